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

/** The seed's sixteen subcommands, in the seed's order, then this project's own. */
export const SUBCOMMANDS: Array<(program: Command) => Command> = [
  app, job, dep, ls, modify, rm, killjob, mkchild, launcher, submitLaunch, init, service, makeDummies, which, log, server,
  rerun, activate, deactivate, cd, web,
];
