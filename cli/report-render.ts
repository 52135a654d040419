import type { ErrorGroup, Report, Series } from "../libs/models/index.js";
// Types only: vega-lite itself is imported when a command draws.
import type { TopLevelSpec } from "vega-lite";

/*
 * How `balsam report` shows a report: a chart on the terminal, the series as
 * CSV, a plot as PNG. The libraries, and why these:
 * - asciichart (terminal): a small, dependency-free, long-maintained line
 *   plotter (box-drawing characters, y labels); we only resample the series
 *   onto the terminal's columns, since it plots points evenly spaced.
 * - vega-lite + vega (PNG): a declarative plot spec compiled to an SVG in
 *   Node with no browser and no canvas (`View.toSVG()`), with real time axes
 *   and tick formatting, from a widely used, actively kept grammar; building
 *   axes by hand would be ours to get right.
 * - @resvg/resvg-js (PNG): renders that SVG to PNG with resvg (Rust, through
 *   napi prebuilt binaries published to npm for Linux/macOS/Windows), with no
 *   system libraries (cairo, a browser) to install. Text uses the system's
 *   fonts (DejaVu Sans on Debian); with none found the plot still renders,
 *   without its labels.
 * All three are imported when a command draws, never at start-up.
 */

const LABELS: Record<"utilization" | "throughput", { title: string; column: string; y: string }> = {
  utilization: { title: "Utilization: jobs running", column: "running", y: "jobs running" },
  throughput: { title: "Throughput: jobs finished", column: "finished", y: "jobs finished (cumulative)" },
};

/** RFC 4180 field: quoted when it holds a comma, a quote or a line break. */
function csvField(s: string): string {
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** The series as CSV: `time,running` / `time,finished` (ISO times, UTC), or `error,count,example_job_ids`. */
export function reportCsv(r: Report): string {
  if (r.kind === "errors") {
    return ["error,count,example_job_ids", ...r.errors.map((g) => `${csvField(g.line)},${g.count},${g.examples.join(" ")}`)].join("\n") + "\n";
  }
  const { column } = LABELS[r.kind];
  return [`time,${column}`, ...r.series.times.map((t, i) => `${t.toISOString()},${r.series.values[i]}`)].join("\n") + "\n";
}

/**
 * The step series on `columns` evenly spaced instants from its first time to
 * its last: each column holds the largest value reached in its slice of
 * time, so a burst shorter than a column still shows.
 */
export function resample(s: Series, columns: number): number[] {
  const n = s.times.length;
  if (n === 0) return [];
  const t0 = (s.times[0] as Date).getTime();
  const t1 = (s.times[n - 1] as Date).getTime();
  if (t1 === t0 || columns < 2) return [Math.max(...s.values)];
  const out: number[] = [];
  let i = 0;
  let level = 0;
  for (let c = 0; c < columns; c++) {
    const end = t0 + ((t1 - t0) * c) / (columns - 1);
    let peak = level;
    while (i < n && (s.times[i] as Date).getTime() <= end) {
      level = s.values[i] as number;
      peak = Math.max(peak, level);
      i++;
    }
    out.push(c === 0 ? level : peak);
  }
  return out;
}

function span(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${(s / 60).toFixed(1)} min`;
  if (s < 172_800) return `${(s / 3600).toFixed(1)} h`;
  return `${(s / 86_400).toFixed(1)} d`;
}

/** A compact chart for a terminal `width` columns wide: a summary line, the plot, the time axis' ends. */
export async function terminalChart(r: Report, width: number): Promise<string[]> {
  if (r.kind === "errors") return errorTable(r.errors);
  const s = r.series;
  const { column } = LABELS[r.kind];
  if (s.times.length === 0) return [`no ${r.kind === "utilization" ? "runs" : "finished jobs"} recorded for these jobs`];
  const first = s.times[0] as Date;
  const last = s.times[s.times.length - 1] as Date;
  const peak = Math.max(...s.values);
  const peakAt = s.times[s.values.indexOf(peak)] as Date;
  const summary =
    r.kind === "utilization"
      ? `jobs running: peak ${peak} at ${peakAt.toISOString()}, ${s.values[s.values.length - 1]} at the end; ${span(last.getTime() - first.getTime())} from ${first.toISOString()}`
      : `jobs finished: ${s.values[s.values.length - 1]} in ${span(last.getTime() - first.getTime())} from ${first.toISOString()}`;
  const labelWidth = Math.max(4, String(peak).length + 1);
  const values = resample(s, Math.max(10, Math.min(120, width - labelWidth - 4)));
  const asciichart = (await import("asciichart")).default;
  // From 0, one row per job up to 10 rows: the labels are then whole numbers.
  const plot = asciichart.plot(values, { min: 0, height: Math.max(1, Math.min(10, peak)), format: (x: number) => x.toFixed(0).padStart(labelWidth) });
  const pad = " ".repeat(labelWidth + 2);
  const from = first.toISOString().slice(11, 19);
  const to = last.toISOString().slice(11, 19);
  const axis = pad + from + to.padStart(Math.max(to.length + 1, values.length - from.length));
  return [summary, ...plot.split("\n"), `${axis}  (UTC, ${column})`];
}

function errorTable(groups: readonly ErrorGroup[]): string[] {
  if (groups.length === 0) return ["no failed jobs"];
  const total = groups.reduce((a, g) => a + g.count, 0);
  const w = String(groups[0]?.count ?? 0).length;
  return [`${total} failed job(s), ${groups.length} distinct last error line(s):`, ...groups.map((g) => `${String(g.count).padStart(w)}  ${g.line}  (e.g. ${g.examples[0]?.slice(0, 8) ?? ""})`)];
}

/** The vega-lite spec of a report's plot. */
export function plotSpec(r: Report): TopLevelSpec {
  const base = { $schema: "https://vega.github.io/schema/vega-lite/v6.json", width: 640, height: 240, background: "white", config: { font: "sans-serif" } };
  if (r.kind === "errors") {
    return {
      ...base,
      title: "Failed jobs by last error line",
      height: Math.max(60, 22 * r.errors.length),
      data: { values: r.errors.map((g) => ({ line: g.line.length > 70 ? g.line.slice(0, 69) + "…" : g.line, count: g.count })) },
      mark: { type: "bar", color: "#c0392b" },
      encoding: {
        y: { field: "line", type: "nominal", sort: "-x", title: null, axis: { labelLimit: 420 } },
        x: { field: "count", type: "quantitative", title: "failed jobs", axis: { tickMinStep: 1 } },
      },
    };
  }
  const { title, y } = LABELS[r.kind];
  return {
    ...base,
    title,
    data: { values: r.series.times.map((t, i) => ({ time: t.toISOString(), value: r.series.values[i] })) },
    mark: { type: "area", interpolate: "step-after", line: { color: "#1f77b4" }, color: "#1f77b4", opacity: 0.25 },
    encoding: {
      x: { field: "time", type: "temporal", scale: { type: "utc" }, title: "time (UTC)", axis: { labelOverlap: true } },
      y: { field: "value", type: "quantitative", title: y, axis: { tickMinStep: 1 } },
    },
  };
}

/** The report as a PNG image: vega-lite → SVG (vega, headless) → PNG (resvg). */
export async function reportPng(r: Report): Promise<Buffer> {
  const [vega, vegaLite, { Resvg }] = await Promise.all([import("vega"), import("vega-lite"), import("@resvg/resvg-js")]);
  const view = new vega.View(vega.parse(vegaLite.compile(plotSpec(r)).spec), { renderer: "none" });
  try {
    const svg = await view.toSVG();
    const png = new Resvg(svg, { font: { loadSystemFonts: true, defaultFontFamily: "DejaVu Sans", sansSerifFamily: "DejaVu Sans" }, fitTo: { mode: "zoom", value: 1.5 } });
    return png.render().asPng();
  } finally {
    view.finalize();
  }
}
