import { createRequire } from "node:module";
import { Command } from "commander";
import { normalizeArgv } from "./argv.js";
import { configureProgram, handleCommanderError, printError } from "./common.js";
import { subcommandsFor } from "./registry.js";

/**
 * `balsam`: one file per subcommand under cli/, each a thin layer over libs/.
 * The order and the one-line descriptions are the seed's `balsam --help`.
 */
// `balsam ls | head`: the reader has what it wanted; end quietly instead of a stack trace.
process.stdout.on("error", (err: NodeJS.ErrnoException) => {
  if (err.code !== "EPIPE") throw err;
  process.exit(0);
});
const { version } = createRequire(import.meta.url)("../../package.json") as { version: string };
const program = new Command("balsam").description("Balsam command line interface").showHelpAfterError(false);
program.version(version, "-V, --version", "print the version");
configureProgram(program);
for (const { register } of subcommandsFor(process.argv.slice(2))) {
  const sub = register(program);
  sub.exitOverride();
}

let args: string[] | undefined;
try {
  args = normalizeArgv(program, process.argv.slice(2));
} catch (err) {
  printError(err);
}
if (args) {
  try {
    await program.parseAsync(args, { from: "user" });
  } catch (err) {
    handleCommanderError(err);
  }
}
