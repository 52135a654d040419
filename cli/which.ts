import type { Command } from "commander";
import { action, out } from "./common.js";

export function register(program: Command): Command {
  return program
    .command("which")
    .description("Get info on current/available DBs")
    .option("--list", "list the known databases")
    .option("--name <part>", "with --list: only databases whose path contains PART")
    .action(
      action(async (o: { list?: boolean; name?: string }) => {
        const { readKnownDatabases, readSettings, redactUrl, resolveDbPath } = await import("../libs/config/index.js");
        if (o.list) {
          const dbs = readKnownDatabases().filter((d) => !o.name || d.includes(o.name));
          for (const d of dbs) out(d);
          if (dbs.length === 0) out("no known databases (create one with `balsam init DIR`)");
          return;
        }
        const dir = resolveDbPath();
        const settings = readSettings(dir);
        const { localStatus } = await import("../services/dbserver/local.js");
        const s = await localStatus(dir, settings);
        out(`BALSAM_DB_PATH=${dir}`);
        out(`database ${settings.dbName}, queue prefix ${settings.queuePrefix}, scheduler ${settings.scheduler}`);
        out(`mongo: ${s.local.mongo ? "local" : "remote"} ${redactUrl(s.mongo.url) || "(not running)"} ${s.mongo.up ? "up" : "down"}`);
        out(`redis: ${s.local.redis ? "local" : "remote"} ${redactUrl(s.redis.url) || "(not running)"} ${s.redis.up ? "up" : "down"}`);
      }),
    );
}
