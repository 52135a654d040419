import type { ProgressOptions } from "../libs/client/index.js";

/**
 * Runs an operation over many jobs with a progress bar on a terminal
 * (stderr; nothing off a terminal, so pipes and logs stay clean) and with
 * Ctrl-C asking it to stop: the operation heeds the signal between chunks,
 * so each job is either fully changed or untouched, and the caller says how
 * many were done. A second Ctrl-C is not caught: it ends the process as usual.
 */
export async function withProgress<T>(fn: (p: Required<ProgressOptions>) => Promise<T>): Promise<{ result: T; interrupted: boolean }> {
  const ac = new AbortController();
  const bar = process.stderr.isTTY ? await makeBar() : undefined;
  let started = false;
  const onProgress = (done: number, total: number) => {
    if (!bar || ac.signal.aborted) return;
    if (!started) bar.start(total, done);
    else bar.update(done);
    started = true;
  };
  const onSigint = () => {
    ac.abort();
    bar?.stop();
    process.stderr.write("balsam: interrupted; finishing the jobs in hand (Ctrl-C again to stop at once)\n");
  };
  process.once("SIGINT", onSigint);
  try {
    const result = await fn({ signal: ac.signal, onProgress });
    return { result, interrupted: ac.signal.aborted };
  } finally {
    process.off("SIGINT", onSigint);
    bar?.stop();
  }
}

async function makeBar() {
  // The CommonJS module itself (its default export): a bundled dynamic import has no named exports.
  const { SingleBar, Presets } = (await import("cli-progress")).default;
  // The cursor stays shown: a second Ctrl-C ends the process before the bar could show it again.
  return new SingleBar({ stream: process.stderr, clearOnComplete: false, hideCursor: false }, Presets.shades_classic);
}

/** Ctrl-C's exit code (128 + SIGINT), as a shell reports an interrupted command. */
export const EXIT_INTERRUPTED = 130;
