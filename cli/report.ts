import { Argument, type Command } from "commander";
import { writeFileSync } from "node:fs";
import { REPORT_KINDS, type ReportKind } from "../libs/models/index.js";
import { UsageError } from "../libs/errors/index.js";
import { action, withClient } from "./common.js";
import { collectTag, printLines, selectorFilter, type SelectorOptions } from "./format.js";

interface ReportOptions extends SelectorOptions {
  since?: string;
  csv?: string;
  png?: string;
}

const UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** `--since`: a time (anything Date parses, e.g. 2026-12-04T10:00:00Z) or an age before now (90s, 30m, 2h, 1d). */
export function parseSince(raw: string | undefined, now = Date.now()): Date | undefined {
  if (raw === undefined) return undefined;
  const age = /^(\d+(?:\.\d+)?)([smhd])$/.exec(raw.trim());
  if (age) return new Date(now - Number(age[1]) * (UNIT_MS[age[2] as string] as number));
  const t = /^\d{4}-\d{2}-\d{2}/.test(raw.trim()) ? Date.parse(raw.trim()) : Number.NaN;
  if (Number.isNaN(t)) throw new UsageError(`--since takes a time (2026-12-04T10:00:00Z) or an age (90s, 30m, 2h, 1d), not '${raw}'`);
  return new Date(t);
}

function kindArg(v: string): ReportKind {
  if (!(REPORT_KINDS as readonly string[]).includes(v)) throw new UsageError(`no report '${v}': use ${REPORT_KINDS.join(", ")}`);
  return v as ReportKind;
}

export function register(program: Command): Command {
  return program
    .command("report")
    .description("what a campaign did: jobs running over time, jobs finished over time, or failed jobs by error")
    .addArgument(new Argument("<kind>", "utilization (jobs running), throughput (jobs finished, cumulative) or errors (failed jobs by last error line)").argParser(kindArg))
    .option("--name <part>", "only jobs whose name contains PART")
    .option("--id <part>", "only jobs whose id contains PART")
    .option("--wf <part>", "only jobs of workflows whose name contains PART (ignoring case)")
    .option("--wf-exact <workflow>", "only jobs of the workflow named exactly WORKFLOW")
    .option("--state <state>", "only jobs now in this state")
    .option("--tag <KEY=VALUE>", "only jobs with this tag (repeatable: all must match)", collectTag)
    .option("--since <time>", "from this time (2026-12-04T10:00:00Z) or this long ago (30m, 2h, 1d)")
    .option("--csv <file>", "write the series as CSV to FILE ('-': standard output, instead of the chart)")
    .option("--png <file>", "write a plot of it as a PNG image to FILE")
    .addHelpText("after", "\nThe series come from the jobs' state histories, as Balsam 0.x's utilization_report/throughput_report did.")
    .action(
      action(async (kind: ReportKind, o: ReportOptions) => {
        const filter = selectorFilter(o);
        const since = parseSince(o.since);
        if (o.png === "-") throw new UsageError("--png needs a file name");
        const report = await withClient((b) => b.report(kind, filter, { since }), { readOnly: true });
        const render = await import("./report-render.js");
        if (o.csv !== undefined) {
          const csv = render.reportCsv(report);
          if (o.csv === "-") process.stdout.write(csv);
          else writeFileSync(o.csv, csv);
        }
        if (o.png !== undefined) writeFileSync(o.png, await render.reportPng(report));
        if (o.csv !== "-") printLines(await render.terminalChart(report, process.stdout.columns || 100));
      }),
    );
}
