import type { Command } from "commander";
import { action, out } from "./common.js";

export function register(program: Command): Command {
  return program
    .command("init")
    .description("Create new balsam DB")
    .argument("<path>", "directory for the new database")
    .option("--mongo-url <url>", "use this MongoDB server instead of a local one")
    .option("--redis-url <url>", "use this Redis instead of a local one: redis://[:pw@]host:port, redis-cluster://[:pw@]host:port[,host:port…] or redis-sentinel://[:pw@]host:port[,host:port…]/master-name")
    .option("--db-name <name>", "MongoDB database name", "balsam")
    .option("--queue-prefix <prefix>", "BullMQ key prefix (no braces: each workflow's queue carries its own hash tag)", "balsam")
    .action(
      action(async (path: string, o: { mongoUrl?: string; redisUrl?: string; dbName: string; queuePrefix: string }) => {
        const { initDatabaseDir, redactUrl } = await import("../libs/config/index.js");
        const { dir, settings } = initDatabaseDir(path, { mongoUrl: o.mongoUrl, redisUrl: o.redisUrl, dbName: o.dbName, queuePrefix: o.queuePrefix });
        out(`created Balsam database ${dir}`);
        out(`  mongo: ${redactUrl(settings.mongoUrl)}  redis: ${redactUrl(settings.redisUrl)}  db: ${settings.dbName}`);
        out(`use it with: export BALSAM_DB_PATH=${dir}`);
      }),
    );
}
