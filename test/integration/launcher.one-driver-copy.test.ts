import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { useCliFixture } from "../support/fixture.js";

/**
 * A launcher loads one copy of each driver: the bundle's
 * (dist/bundle/drivers, scripts/bundle-cli.mjs). Its services and the
 * dist/libs they import named the packages too, which loaded a second,
 * unused copy of the mongodb driver and of bullmq with ioredis from
 * node_modules (~0.5 s of a launcher's start-up CPU, measured), and of zod
 * (the settings' validation, ~0.04 s). A loader
 * hook makes importing any of them by name fail, so a launcher that does
 * fails loudly.
 */
const f = useCliFixture("onedriver");

const HOOK =
  "data:text/javascript," +
  encodeURIComponent(
    `import { register } from "node:module";
register("data:text/javascript," + encodeURIComponent(${JSON.stringify(
      `export async function resolve(s, c, n) {
  if (/^(mongodb|bullmq|ioredis|zod)(\\/|$)/.test(s)) throw new Error("loaded a second copy of a driver: " + s + " from " + c.parentURL);
  return n(s, c);
}`,
    )}));`,
  );

describe("a launcher's drivers", () => {
  test("a launcher runs a job without importing mongodb, bullmq, ioredis or zod by name: only the bundle's copies load", async () => {
    await f.balsam.apps.add({ name: "true", executable: "/bin/true" });
    const j = await f.balsam.jobs.add({ name: "one", workflow: "ONECOPY", application: "true" });
    const l = f.start("ONECOPY", { env: { NODE_OPTIONS: `--import=${HOOK}` } });
    assert.equal(await l.exited, 0, l.output());
    assert.doesNotMatch(l.output(), /second copy/);
    assert.equal((await f.balsam.jobs.get(j._id)).state, "JOB_FINISHED");
  });
});
