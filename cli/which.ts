import type { Command } from "commander";
import { ConflictError, NotFoundError } from "../libs/errors/index.js";
import { action, out } from "./common.js";

/**
 * The one known database whose path contains `part` (0.x `balsam which
 * --name`, `source balsamactivate NAME`); none or several is an error that
 * names them.
 */
export async function oneKnownDatabase(part: string): Promise<string> {
  const { readKnownDatabases } = await import("../libs/config/index.js");
  const known = readKnownDatabases();
  const dbs = known.filter((d) => d.includes(part));
  if (dbs.length === 1) return dbs[0] as string;
  if (dbs.length === 0) {
    throw new NotFoundError(`no known database has '${part}' in its path`, { hint: known.length ? `known: ${known.join(", ")}` : "create one with `balsam init DIR`" });
  }
  throw new ConflictError(`'${part}' matches ${dbs.length} known databases: ${dbs.join(", ")}`, { hint: "give more of the path" });
}

export function register(program: Command): Command {
  return program
    .command("which")
    .description("Get info on current/available DBs")
    .option("--list", "list the known databases")
    .option("--name <part>", "print the one known database whose path contains PART (with --list: every such one)")
    .addHelpText("after", "\nWithout BALSAM_DB_PATH set, lists the known databases (balsam init adds each one it makes).")
    .action(
      action(async (o: { list?: boolean; name?: string }) => {
        const { describeRedisKind, parseRedisUrl, readKnownDatabases, readSettings, redactUrl, resolveDbPath } = await import("../libs/config/index.js");
        if (o.name !== undefined && !o.list) {
          out(await oneKnownDatabase(o.name));
          return;
        }
        if (o.list || !process.env.BALSAM_DB_PATH) {
          const dbs = readKnownDatabases().filter((d) => !o.name || d.includes(o.name));
          if (!o.list) out("BALSAM_DB_PATH is not set; the known databases (activate one with: eval \"$(balsam activate NAME)\"):");
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
        // A URL of no known form is said here too, as the command that connects would say it.
        const target = s.redis.url ? parseRedisUrl(s.redis.url) : undefined;
        const kind = target && target.kind !== "single" ? ` ${describeRedisKind(target)}` : "";
        out(`redis: ${s.local.redis ? "local" : "remote"}${kind} ${redactUrl(s.redis.url) || "(not running)"} ${s.redis.up ? "up" : "down"}`);
      }),
    );
}
