import { Command } from "commander";
import { configureProgram, handleCommanderError } from "./common.js";
import { SUBCOMMANDS } from "./registry.js";

/**
 * `balsam`: one file per subcommand under cli/, each a thin layer over libs/.
 * The order and the one-line descriptions are the seed's `balsam --help`.
 */
const program = new Command("balsam").description("Balsam command line interface").showHelpAfterError(false);
configureProgram(program);
for (const register of SUBCOMMANDS) {
  const sub = register(program);
  sub.exitOverride();
}

try {
  await program.parseAsync(process.argv);
} catch (err) {
  handleCommanderError(err);
}
