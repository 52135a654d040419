import type { Command } from "commander";
import { appendFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { UsageError } from "../libs/errors/index.js";
import { action, openClient } from "./common.js";

function seconds(v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new UsageError(`--interval-seconds must be a number > 0, not '${v}'`);
  return n;
}

export function register(program: Command): Command {
  return program
    .command("service")
    .description("Start Balsam auto-scheduling service")
    .option("--interval-seconds <s>", "seconds between passes (default: settings service.intervalSeconds, 5)", seconds)
    .option("--once", "make one pass and exit")
    .action(
      action(async (o: { intervalSeconds?: number; once?: boolean }) => {
        const { readSettings, resolveDbPath } = await import("../libs/config/index.js");
        const { BalsamService, resolveScheduler } = await import("../services/service/index.js");
        const dbPath = resolveDbPath();
        const settings = readSettings(dbPath);
        const scheduler = resolveScheduler(settings);
        const logDir = join(dbPath, "log");
        mkdirSync(logDir, { recursive: true });
        const log = (line: string) => {
          const stamped = `${new Date().toISOString()} ${line}`;
          process.stderr.write(stamped + "\n");
          appendFileSync(join(logDir, "service.log"), stamped + "\n");
        };
        const client = await openClient();
        const service = new BalsamService({ client, dbPath, scheduler, policy: settings.service, intervalSeconds: o.intervalSeconds, log });
        const onSignal = (sig: string) => service.stop(`received ${sig}`);
        process.on("SIGTERM", onSignal);
        process.on("SIGINT", onSignal);
        try {
          await service.start();
          if (o.once) {
            await service.pass();
            service.stop("--once");
            await service.close();
          } else {
            await service.run();
          }
        } finally {
          process.off("SIGTERM", onSignal);
          process.off("SIGINT", onSignal);
          await service.close();
          await client.close();
        }
      }),
    );
}
