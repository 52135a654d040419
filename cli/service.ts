import type { Command } from "commander";
import { action } from "./common.js";
import { BalsamError } from "../libs/errors/index.js";

export function register(program: Command): Command {
  return program
    .command("service")
    .description("Start Balsam auto-scheduling service")
    .action(
      action(() => {
        throw new BalsamError("RUNTIME", "service is not implemented yet", { hint: "run `balsam launcher` inside an allocation instead" });
      }),
    );
}
