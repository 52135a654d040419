import type { Command } from "commander";
import { register as app } from "./app.js";
import { register as job } from "./job.js";
import { register as dep } from "./dep.js";
import { register as ls } from "./ls.js";
import { register as modify } from "./modify.js";
import { register as rm } from "./rm.js";
import { register as killjob } from "./killjob.js";
import { register as mkchild } from "./mkchild.js";
import { register as launcher } from "./launcher.js";
import { register as submitLaunch } from "./submit-launch.js";
import { register as init } from "./init.js";
import { register as service } from "./service.js";
import { register as makeDummies } from "./make_dummies.js";
import { register as which } from "./which.js";
import { register as log } from "./log.js";
import { register as server } from "./server.js";
import { register as rerun } from "./rerun.js";
import { register as activate, registerDeactivate as deactivate } from "./activate.js";
import { register as cd } from "./cd.js";
import { register as web } from "./web.js";
import { register as report } from "./report.js";

export interface Subcommand {
  /** What the user types: the name of the command `register` adds (a unit test holds them equal). */
  name: string;
  register: (program: Command) => Command;
}

/** The seed's sixteen subcommands, in the seed's order, then this project's own. */
export const SUBCOMMANDS: readonly Subcommand[] = [
  { name: "app", register: app },
  { name: "job", register: job },
  { name: "dep", register: dep },
  { name: "ls", register: ls },
  { name: "modify", register: modify },
  { name: "rm", register: rm },
  { name: "killjob", register: killjob },
  { name: "mkchild", register: mkchild },
  { name: "launcher", register: launcher },
  { name: "submit-launch", register: submitLaunch },
  { name: "init", register: init },
  { name: "service", register: service },
  { name: "make_dummies", register: makeDummies },
  { name: "which", register: which },
  { name: "log", register: log },
  { name: "server", register: server },
  { name: "rerun", register: rerun },
  { name: "activate", register: activate },
  { name: "deactivate", register: deactivate },
  { name: "cd", register: cd },
  { name: "web", register: web },
  { name: "report", register: report },
];

/**
 * The subcommands to define for a command line: only the one named when it
 * is the first word (`balsam ls ...`), else all (`balsam --help`, a typo
 * commander should answer with the list). Defining all 21 with their options
 * was ~6 ms of every command's start.
 */
export function subcommandsFor(args: readonly string[]): readonly Subcommand[] {
  const first = args[0];
  const named = SUBCOMMANDS.find((s) => s.name === first);
  return named ? [named] : SUBCOMMANDS;
}
