import type { Command } from "commander";
import { action, out, withClient } from "./common.js";

interface AppOptions {
  name: string;
  executable: string;
  preprocess?: string;
  postprocess?: string;
  envscript?: string;
  description?: string[];
}

export function register(program: Command): Command {
  return program
    .command("app")
    .description("add a new application definition")
    .requiredOption("--name <name>", "unique application name, used by `balsam job --application`")
    .requiredOption("--executable <command>", "command line run for each job (the job's args are appended)")
    .option("--preprocess <script>", "run in the job's working directory before the executable")
    .option("--postprocess <script>", "run after the executable (and on errors/timeouts when the job asks)")
    .option("--envscript <script>", "sourced before the executable to set up its environment")
    .option("--description <words...>", "free-text description")
    .action(
      action(async (o: AppOptions) => {
        const app = await withClient((b) =>
          b.apps.add({
            name: o.name,
            executable: o.executable,
            preprocess: o.preprocess,
            postprocess: o.postprocess,
            envscript: o.envscript,
            description: o.description?.join(" "),
          }),
        );
        out(`added app ${app.name}: ${app.executable}`);
      }),
    );
}
