import type { Command } from "commander";
import { existsSync, readdirSync, statSync, openSync, readSync, closeSync, watch } from "node:fs";
import { join } from "node:path";
import { action, intOption, out } from "./common.js";

/** The last `bytes` bytes of a file (what `-f` prints as it grows). */
function tail(file: string, bytes: number): string {
  const size = statSync(file).size;
  const start = Math.max(0, size - bytes);
  const fd = openSync(file, "r");
  try {
    const buf = Buffer.alloc(size - start);
    readSync(fd, buf, 0, buf.length, start);
    return buf.toString("utf8");
  } finally {
    closeSync(fd);
  }
}

/**
 * The last `n` lines of a file, read from its end in growing pieces (64 KiB
 * first): a log of gigabytes is not read whole for its last 20 lines, and a
 * large `-n` still gets all the lines it asks for.
 */
function lastLines(file: string, n: number): string[] {
  const size = statSync(file).size;
  const fd = openSync(file, "r");
  try {
    for (let bytes = 64 * 1024; ; bytes *= 4) {
      const start = Math.max(0, size - bytes);
      const buf = Buffer.alloc(size - start);
      readSync(fd, buf, 0, buf.length, start);
      const lines = buf.toString("utf8").split("\n");
      // Read from the middle of the file: its first piece may be part of a line.
      if (start > 0) lines.shift();
      const whole = lines.filter(Boolean);
      if (whole.length >= n || start === 0) return whole.slice(-n);
    }
  } finally {
    closeSync(fd);
  }
}

export function register(program: Command): Command {
  return program
    .command("log")
    .description("Quick view of Balsam log files")
    .option("-f, --follow", "keep printing what is appended")
    .option("-n, --lines <n>", "lines per file (default 20)", intOption("-n/--lines", 1), 20)
    .action(
      action(async (o: { follow?: boolean; lines: number }) => {
        const { resolveDbPath } = await import("../libs/config/index.js");
        const dir = join(resolveDbPath(), "log");
        const files = existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith(".log")).sort() : [];
        if (files.length === 0) {
          out(`no log files in ${dir} yet`);
          if (!o.follow) return;
        }
        const sizes = new Map<string, number>();
        for (const f of files) {
          const p = join(dir, f);
          const lines = lastLines(p, o.lines);
          out(`==> ${p} <==`);
          for (const l of lines) out(l);
          sizes.set(p, statSync(p).size);
        }
        if (!o.follow) return;
        await new Promise<void>((resolve) => {
          const w = watch(dir, (_ev, name) => {
            if (!name || !name.endsWith(".log")) return;
            const p = join(dir, name);
            if (!existsSync(p)) return;
            const size = statSync(p).size;
            const prev = sizes.get(p) ?? 0;
            if (size > prev) process.stdout.write(tail(p, size - prev));
            sizes.set(p, size);
          });
          process.once("SIGINT", () => {
            w.close();
            resolve();
          });
        });
      }),
    );
}
