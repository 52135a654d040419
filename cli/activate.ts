import type { Command } from "commander";
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { action, out } from "./common.js";
import { oneKnownDatabase } from "./which.js";

/** A word the shell reads back as exactly `s`. */
function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/**
 * Balsam 0.x's `source balsamactivate NAME` / `balsamdeactivate`: a command
 * cannot change its shell's environment, so these print the lines for the
 * shell to run: `eval "$(balsam activate NAME)"`.
 */
export function register(program: Command): Command {
  return program
    .command("activate")
    .description("print the export that makes NAME the current database: eval \"$(balsam activate NAME)\"")
    .argument("<name>", "a database directory, or part of a known database's path (`balsam which --list`)")
    .action(
      action(async (name: string) => {
        const dir = existsSync(join(name, "settings.json")) ? resolve(name) : await oneKnownDatabase(name);
        out(`export BALSAM_DB_PATH=${shellQuote(dir)}`);
        process.stderr.write(`balsam: database ${dir}\n`);
      }),
    );
}

export function registerDeactivate(program: Command): Command {
  return program
    .command("deactivate")
    .description("print the line that unsets the current database: eval \"$(balsam deactivate)\"")
    .action(
      action(() => {
        out("unset BALSAM_DB_PATH");
      }),
    );
}
