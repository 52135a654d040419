import { spawn, type ChildProcess } from "node:child_process";
import { BALSAM_BIN } from "./cli.js";

/** A `balsam web --port 0` subprocess, started as a user starts it. */
export interface WebProc {
  child: ChildProcess;
  /** `http://127.0.0.1:PORT`, no trailing slash. */
  url: string;
  token: string;
  output(): string;
  /** SIGTERM, then the exit code (SIGKILL after 10 s: a server that hangs on stop fails its test). */
  stop(): Promise<number>;
}

export async function startWeb(env: NodeJS.ProcessEnv, args: string[] = []): Promise<WebProc> {
  const child = spawn(process.execPath, [BALSAM_BIN, "web", "--port", "0", ...args], { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  const exited = new Promise<number>((r) => child.on("close", (code) => r(code ?? 1)));
  const started = new Promise<{ url: string; token: string }>((resolve, reject) => {
    const look = (d: Buffer) => {
      out += d.toString();
      const m = /^(http:\/\/[^\s/]+)\/\?token=([0-9a-f]{48})$/m.exec(out);
      if (m) resolve({ url: m[1]!, token: m[2]! });
    };
    child.stdout!.on("data", look);
    child.stderr!.on("data", (d: Buffer) => (out += d.toString()));
    void exited.then((code) => reject(new Error(`balsam web exited ${code} before serving: ${out}`)));
  });
  const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
  const { url, token } = await started.finally(() => clearTimeout(timer));
  return {
    child,
    url,
    token,
    output: () => out,
    async stop() {
      if (child.exitCode !== null) return child.exitCode;
      child.kill("SIGTERM");
      const t = setTimeout(() => child.kill("SIGKILL"), 10_000);
      const code = await exited;
      clearTimeout(t);
      return code;
    },
  };
}

/** Answers are read field by field in tests; a checked type per endpoint would only restate the contract. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Loose = any;

export interface ApiAnswer<T = Loose> {
  status: number;
  body: T;
  headers: Headers;
}

/** One JSON request to the API; `token: null` sends none, a string sends that one. */
export async function api<T = Loose>(
  web: Pick<WebProc, "url" | "token">,
  method: string,
  path: string,
  opts: { body?: unknown; token?: string | null; headers?: Record<string, string> } = {},
): Promise<ApiAnswer<T>> {
  const token = opts.token === undefined ? web.token : opts.token;
  const headers: Record<string, string> = { ...(token !== null ? { authorization: `Bearer ${token}` } : {}), ...opts.headers };
  if (opts.body !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(web.url + path, { method, headers, body: opts.body === undefined ? undefined : JSON.stringify(opts.body) });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON (metrics, the page): the text itself
  }
  return { status: res.status, body: body as T, headers: res.headers };
}

export interface SseEvent {
  event: string;
  data: Loose;
  /** performance.now() when the event's last byte arrived. */
  at: number;
  /** Date.now() at the same moment, to compare with times the servers recorded. */
  wall: number;
}

/**
 * Reads a server-sent-events response, calling `onEvent` for each event as
 * it arrives; resolves when the stream ends (or `signal` aborts).
 */
export async function readSse(res: Response, onEvent: (e: SseEvent) => boolean | void): Promise<void> {
  const reader = res.body!.getReader();
  const dec = new TextDecoder();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += dec.decode(value, { stream: true });
    let i: number;
    while ((i = buf.indexOf("\n\n")) >= 0) {
      const block = buf.slice(0, i);
      buf = buf.slice(i + 2);
      let event = "message";
      const data: string[] = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event: ")) event = line.slice(7);
        else if (line.startsWith("data: ")) data.push(line.slice(6));
      }
      if (data.length === 0) continue;
      if (onEvent({ event, data: JSON.parse(data.join("\n")), at: performance.now(), wall: Date.now() }) === false) {
        await reader.cancel();
        return;
      }
    }
  }
}
