import type { Command } from "commander";
import { redactUrl } from "../libs/config/redact.js";
import { UsageError } from "../libs/errors/index.js";
import { action, confirm, isTerminal, out } from "./common.js";

interface ServerOpts {
  connect?: boolean;
  stop?: boolean;
  status?: boolean;
  reset?: boolean;
  deleteAllData?: boolean;
  yes?: boolean;
  force?: boolean;
  listenAll?: boolean;
}

export function register(program: Command): Command {
  return program
    .command("server")
    .description("Control Balsam server at BALSAM_DB_PATH")
    .option("--connect", "start the local servers if they are not running")
    .option("--stop", "stop the local servers")
    .option("--status", "show the servers and whether they answer")
    // 0.x's --reset restarted the server ("stop and start server"); users
    // type it to restart, so deleting data has its own, explicit name.
    .option("--reset", "stop and start the local servers (data kept)")
    .option("--delete-all-data", "stop the local servers and delete every job and app")
    .option("--yes", "with --delete-all-data: do not ask (required off a terminal)")
    .option("--force", "same as --yes")
    .option("--listen-all", "with --connect/--reset: listen on all interfaces (both servers demand their passwords)")
    .action(
      action(async (o: ServerOpts) => {
        const chosen = (["connect", "stop", "status", "reset", "deleteAllData"] as const).filter((k) => o[k]);
        if (chosen.length !== 1) throw new UsageError("give exactly one of --connect, --stop, --status, --reset, --delete-all-data");
        const yes = o.yes || o.force;
        const { readSettings, resolveDbPath } = await import("../libs/config/index.js");
        const { ensureLocalServers, localStatus, resetLocalServers, stopLocalServers } = await import("../services/dbserver/local.js");
        const dir = resolveDbPath();
        const settings = readSettings(dir);
        if (o.connect) {
          const started = await ensureLocalServers(dir, { listenAll: o.listenAll });
          const s = await localStatus(dir, settings);
          out(started.length ? `started ${started.join(", ")}` : "servers already running");
          out(`mongo ${redactUrl(s.mongo.url)} ${s.mongo.up ? "up" : "DOWN"}; redis ${redactUrl(s.redis.url)} ${s.redis.up ? "up" : "DOWN"}`);
          if (!s.mongo.up || !s.redis.up) process.exitCode = 1;
        } else if (o.stop) {
          const notes: string[] = [];
          const stopped = await stopLocalServers(dir, notes);
          out(stopped.length ? `stopped ${stopped.join(", ")}` : "no local server was running");
          for (const n of notes) out(n);
        } else if (o.status) {
          const s = await localStatus(dir, settings);
          out(`database ${dir}`);
          out(`mongo  ${s.local.mongo ? "local" : "remote"} ${redactUrl(s.mongo.url) || "-"} ${s.mongo.up ? "up" : "down"}${s.mongo.pid ? ` pid ${s.mongo.pid}` : ""}${s.mongo.kind ? ` (${s.mongo.kind})` : ""}`);
          out(`redis  ${s.local.redis ? "local" : "remote"} ${redactUrl(s.redis.url) || "-"} ${s.redis.up ? "up" : "down"}${s.redis.pid ? ` pid ${s.redis.pid}` : ""}`);
        } else if (o.reset) {
          const notes: string[] = [];
          const stopped = await stopLocalServers(dir, notes);
          for (const n of notes) out(n);
          const started = await ensureLocalServers(dir, { listenAll: o.listenAll });
          const s = await localStatus(dir, settings);
          out(`restarted: stopped ${stopped.length ? stopped.join(", ") : "nothing"}; started ${started.join(", ") || "nothing"}`);
          out(`mongo ${redactUrl(s.mongo.url)} ${s.mongo.up ? "up" : "DOWN"}; redis ${redactUrl(s.redis.url)} ${s.redis.up ? "up" : "DOWN"}`);
          if (!s.mongo.up || !s.redis.up) process.exitCode = 1;
        } else if (o.deleteAllData) {
          if (!yes) {
            if (!isTerminal()) throw new UsageError("--delete-all-data deletes every job and app: add --yes to confirm when not on a terminal");
            if (!(await confirm(`delete every job and app of ${dir}?`))) {
              out("nothing deleted");
              return;
            }
          }
          await resetLocalServers(dir);
          out(`stopped the local servers and deleted their data in ${dir}`);
        }
      }),
    );
}

