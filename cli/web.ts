import { hostname } from "node:os";
import type { Command } from "commander";
import { BalsamError } from "../libs/errors/index.js";
import { action, intOption, openClient, out } from "./common.js";

// The server, its drivers and the settings schema (zod) load when `web` runs, not for `balsam --help`.

interface WebOpts {
  port: number;
  listenAll?: boolean;
}

export function register(program: Command): Command {
  return program
    .command("web")
    .description("Serve a live dashboard, a REST API and Prometheus metrics for this database")
    .option("--port <n>", "port to listen on (0: any free port)", intOption("--port", 0, 65535), 8765)
    .option("--listen-all", "listen on every interface, not only 127.0.0.1 (the token still guards every request)")
    .action(
      action(async (o: WebOpts) => {
        const { resolveDbPath } = await import("../libs/config/index.js");
        const { ensureToken, removeWebInfo, writeWebInfo } = await import("../services/web/token.js");
        const dir = resolveDbPath();
        // Before any server is contacted: a token that cannot be trusted stops here.
        const token = ensureToken(dir, { listenAll: o.listenAll });
        const balsam = await openClient();
        const { createWebServer } = await import("../services/web/server.js");
        const server = await createWebServer({ balsam, token }).catch(async (err: unknown) => {
          await balsam.close();
          throw err;
        });
        let url: string;
        try {
          url = await server.listen(o.listenAll ? "0.0.0.0" : "127.0.0.1", o.port);
        } catch (err) {
          await server.close();
          await balsam.close();
          const code = (err as NodeJS.ErrnoException).code;
          if (code === "EADDRINUSE") throw new BalsamError("RUNTIME", `port ${o.port} is in use`, { hint: "give another with --port N, or --port 0 for any free one" });
          throw err;
        }
        writeWebInfo(dir, { url, token, pid: process.pid, host: hostname() });
        out(`balsam web: serving ${dir}`);
        out(`${url}/?token=${token}`);
        await new Promise<void>((resolve) => {
          const stop = () => resolve();
          process.once("SIGINT", stop);
          process.once("SIGTERM", stop);
        });
        removeWebInfo(dir);
        await server.close();
        await balsam.close();
      }),
    );
}
