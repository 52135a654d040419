import type { Command } from "commander";
import { action, out, withClient } from "./common.js";

export function register(program: Command): Command {
  return program
    .command("dep")
    .description("add a dependency between two existing jobs")
    .argument("<parent>", "id (or unique prefix) of the job that must finish first")
    .argument("<child>", "id (or unique prefix) of the job that waits for it")
    .action(
      action(async (parentRef: string, childRef: string) => {
        const { parent, child } = await withClient((b) => b.jobs.addDependency(parentRef, childRef));
        out(`${parent._id} -> ${child._id} (${child.name} is ${child.state})`);
      }),
    );
}
