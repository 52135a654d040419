/// <reference lib="dom" />
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium, type Browser, type Page } from "playwright-core";
import { waitFor } from "../support/context.js";
import { useCliFixture } from "../support/fixture.js";
import { exitedWithin, startLauncher } from "../support/launcher.js";
import { startWeb, type WebProc } from "../support/web.js";

/** Debian's chromium (scripts/provision.sh installs it); playwright-core brings no browser. */
const CHROMIUM = process.env.BALSAM_CHROMIUM ?? "/usr/bin/chromium";
/** Screenshots for a reviewer, under the repository's git-ignored test-output/. */
const SHOTS = resolve(fileURLToPath(import.meta.url), "../../../../test-output/web");

const f = useCliFixture("webui");
const { script } = f;
let web: WebProc;
let browser: Browser;
let page: Page;
const dialogs: string[] = [];
const pageErrors: string[] = [];

async function shot(name: string): Promise<void> {
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

function cell(workflow: string, state: string): string {
  return `#states td[data-workflow="${workflow}"][data-state="${state}"]`;
}

async function cellText(workflow: string, state: string): Promise<string | null> {
  const h = await page.$(cell(workflow, state));
  return h ? h.textContent() : null;
}

describe("balsam web: the dashboard in a real browser", () => {
  before(async () => {
    mkdirSync(SHOTS, { recursive: true });
    await f.balsam.apps.add({ name: "nap", executable: script("nap.sh", 'sleep "$1"; echo "started $2"; echo "DH-OUTPUT: $2"') });
    await f.balsam.apps.add({ name: "long", executable: script("long.sh", 'echo $$ > "$1"; exec sleep 300') });
    web = await startWeb(f.db.env);
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ["--no-sandbox"] });
    page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    page.on("dialog", (d) => {
      dialogs.push(`${d.type()}: ${d.message()}`);
      // The dashboard asks before a kill; the test says yes. Anything else (an alert) is recorded and fails a test.
      void (d.type() === "confirm" ? d.accept() : d.dismiss());
    });
    page.on("pageerror", (e) => pageErrors.push(e.message));
  });
  after(async () => {
    await browser?.close();
    assert.equal(await web.stop(), 0, web.output());
  });

  test("the per-state counts change on screen, without a reload, while a launcher runs the jobs", async () => {
    await f.balsam.jobs.addMany(Array.from({ length: 20 }, (_, i) => ({ name: `nap${i}`, workflow: "LIVE", application: "nap", args: `0.2 ${i}`, nodePackingCount: 4 })));
    await f.balsam.jobs.addMany([{ name: "alpha", workflow: "OTHER", application: "nap", args: "0 a" }, { name: "beta", workflow: "OTHER", application: "nap", args: "0 b" }]);
    await page.goto(`${web.url}/?token=${web.token}`);
    await page.waitForFunction((sel) => document.querySelector(sel)?.textContent === "20", cell("LIVE", "READY"));
    assert.equal(new URL(page.url()).search, "", "the token leaves the address bar");
    await page.evaluate(() => ((window as unknown as { sameDocument: boolean }).sameDocument = true));
    await shot("1-overview-before");
    const l = startLauncher(["--wf-filter", "LIVE", "--job-mode", "serial"], { ...f.db.env, BALSAM_NODELIST: "node1" });
    const seen = new Set<string>();
    await waitFor(
      async () => {
        seen.add(`${await cellText("LIVE", "READY")}/${await cellText("LIVE", "JOB_FINISHED")}`);
        return (await cellText("LIVE", "JOB_FINISHED")) === "20";
      },
      30_000,
      "the page to show 20 finished jobs",
    );
    assert.equal(await exitedWithin(l, 30_000), 0, l.output());
    assert.equal(await page.evaluate(() => (window as unknown as { sameDocument?: boolean }).sameDocument), true, "no reload happened");
    assert.ok(seen.size >= 2, `counts seen on screen: ${[...seen].join(", ")}`);
    assert.equal(await cellText("LIVE", "READY"), "0");
    assert.equal(await cellText("OTHER", "READY"), "2");
    await shot("2-overview-after");
  });

  test("the job table filters by workflow and name", async () => {
    await page.fill("#f-workflow", "LIVE");
    await page.fill("#f-name", "nap1");
    await page.click("#f-apply");
    await page.waitForFunction(() => document.querySelectorAll("#jobs tbody tr[data-job]").length === 11);
    const rows = await page.$$eval("#jobs tbody tr[data-job]", (trs) => trs.map((tr) => [...tr.children].map((td) => td.textContent)));
    assert.deepEqual(rows.map((r) => r[1]).sort(), ["nap1", ...Array.from({ length: 10 }, (_, i) => `nap1${i}`)].sort());
    assert.ok(rows.every((r) => r[2] === "LIVE" && r[4] === "JOB_FINISHED"));
    await shot("3-table-filtered");
    await page.fill("#f-workflow", "OTHER");
    await page.fill("#f-name", "");
    await page.click("#f-apply");
    await page.waitForFunction(() => [...document.querySelectorAll("#jobs tbody tr[data-job] td.name")].map((t) => t.textContent).sort().join() === "alpha,beta");
  });

  test("a job's page shows every field, its state history and the tail of its output", async () => {
    await page.fill("#f-workflow", "LIVE");
    await page.fill("#f-name", "nap3");
    await page.click("#f-apply");
    await page.waitForFunction(() => [...document.querySelectorAll("#jobs tbody tr[data-job] td.name")].map((t) => t.textContent).join() === "nap3");
    await page.click("#jobs tbody tr[data-job] a.jobid");
    await page.waitForFunction(() => document.querySelector("#job-output")?.textContent?.includes("DH-OUTPUT: 3"));
    const history = await page.$$eval("#job-history tbody tr td.state", (tds) => tds.map((t) => t.textContent));
    assert.deepEqual(history, ["CREATED", "READY", "STAGED_IN", "PREPROCESSED", "RUNNING", "RUN_DONE", "POSTPROCESSED", "JOB_FINISHED"]);
    assert.equal(await page.textContent("#job-output"), "started 3\nDH-OUTPUT: 3");
    assert.equal(await page.textContent('#job-fields td[data-field="args"]'), "0.2 3");
    assert.equal(await page.textContent('#job-fields td[data-field="data"]'), '{"result":3}');
    assert.ok((await page.$$("#job-fields tbody tr")).length >= 30, "every field");
    await shot("4-job-page");
  });

  test("kill a running job from its page: USER_KILLED on screen and its process gone", async () => {
    const pidFile = join(f.dir, "long.pid");
    const job = await f.balsam.jobs.add({ name: "long", workflow: "KILL", application: "long", args: pidFile });
    const l = startLauncher(["--wf-filter", "KILL", "--job-mode", "serial"], { ...f.db.env, BALSAM_NODELIST: "node1" });
    await waitFor(async () => existsSync(pidFile) && readFileSync(pidFile, "utf8").trim() !== "" && (await f.balsam.jobs.get(job._id)).state === "RUNNING", 30_000, "the long job to run");
    const pid = Number(readFileSync(pidFile, "utf8").trim());
    assert.doesNotThrow(() => process.kill(pid, 0), "the job's process runs");
    await page.goto(`${web.url}/#/`);
    await page.waitForSelector("#launchers tbody tr[data-launcher]", { timeout: 15_000 });
    await shot("5-launcher-running");
    await page.goto(`${web.url}/#/job/${job._id}`);
    await page.waitForFunction(() => document.querySelector("#job-state")?.textContent === "RUNNING");
    const confirmsBefore = dialogs.filter((d) => d.startsWith("confirm")).length;
    await page.click("#kill");
    await page.waitForFunction(() => document.querySelector("#job-state")?.textContent === "USER_KILLED", undefined, { timeout: 30_000 });
    assert.equal(dialogs.filter((d) => d.startsWith("confirm")).length, confirmsBefore + 1, "asked before killing");
    await waitFor(
      () => {
        try {
          process.kill(pid, 0);
          return false;
        } catch {
          return true;
        }
      },
      10_000,
      "the killed job's process to be gone",
    );
    assert.equal((await f.balsam.jobs.get(job._id)).state, "USER_KILLED");
    await shot("6-killed");
    assert.equal(await exitedWithin(l, 30_000), 0, l.output());
    // Rerun, from the same page: back to READY, its history kept (no launcher takes it here).
    await page.click("#rerun");
    await page.waitForFunction(() => document.querySelector("#job-state")?.textContent === "READY");
    const again = await f.balsam.jobs.get(job._id);
    assert.deepEqual([again.state, again.attempts], ["READY", 1]);
    assert.ok(again.stateHistory.some((h) => h.state === "USER_KILLED"), "history kept");
  });

  test("a job named <img src=x onerror=alert(1)> is shown as text; errors are readable messages", async () => {
    const name = "<img src=x onerror=alert(1)>";
    const job = await f.balsam.jobs.add({ name, workflow: "XSS", application: "nap", args: "0 x", description: "<script>alert(2)</script><b>bold?</b>" });
    await page.goto(`${web.url}/#/`);
    await page.fill("#f-workflow", "XSS");
    await page.fill("#f-name", "");
    await page.click("#f-apply");
    await page.waitForFunction(() => [...document.querySelectorAll("#jobs tbody tr[data-job]")].map((tr) => tr.children[2]?.textContent).join() === "XSS");
    assert.equal(await page.textContent("#jobs tbody tr[data-job] td.name"), name);
    assert.equal(await page.$$eval("#jobs img, #states img", (imgs) => imgs.length), 0);
    await page.click("#jobs tbody tr[data-job] a.jobid");
    await page.waitForFunction((n) => document.querySelector('#job-fields td[data-field="name"]')?.textContent === n, name);
    assert.equal(await page.textContent('#job-fields td[data-field="description"]'), "<script>alert(2)</script><b>bold?</b>");
    assert.equal(await page.$$eval("main img, main script, main b", (els) => els.length), 0);
    await shot("7-xss-as-text");
    assert.deepEqual(dialogs.filter((d) => d.startsWith("alert")), [], "no script ran");

    await page.goto(`${web.url}/#/job/${job._id.slice(0, 0)}no-such-job`);
    await page.waitForSelector("#error:not([hidden])");
    assert.match((await page.textContent("#error")) ?? "", /no job whose id contains 'no-such-job'/);
    await shot("8-error");
    assert.deepEqual(pageErrors, [], "no uncaught error in the page");
  });
});
