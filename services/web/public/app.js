// The balsam web dashboard: plain JavaScript, no build step, only the JSON
// API. Everything a job carries (names, args, output) is put on the page as
// text (textContent), never parsed as HTML.

const STATES = [
  "CREATED", "AWAITING_PARENTS", "READY", "STAGED_IN", "PREPROCESSED", "RUNNING", "RUN_DONE", "POSTPROCESSED",
  "JOB_FINISHED", "RUN_TIMEOUT", "RUN_ERROR", "RESTART_READY", "FAILED", "USER_KILLED",
];
const FINAL = new Set(["JOB_FINISHED", "FAILED", "USER_KILLED"]);
const PAGE = 50;

const $ = (id) => document.getElementById(id);

// ---- token: taken once from ?token=, kept for this tab, dropped from the address bar
let token = new URLSearchParams(location.search).get("token") || sessionStorage.getItem("balsam-token") || "";
if (new URLSearchParams(location.search).has("token")) {
  sessionStorage.setItem("balsam-token", token);
  history.replaceState(null, "", location.pathname + location.hash);
}

// ---- helpers
function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k === "dataset") Object.assign(e.dataset, v);
    else if (k === "onclick") e.addEventListener("click", v);
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(c == null ? "" : String(c)));
  return e;
}

function when(iso) {
  if (!iso) return "";
  return new Date(iso).toISOString().replace("T", " ").replace(/\.\d+Z$/, "");
}

function ago(iso) {
  const s = Math.max(0, Math.round((Date.now() - new Date(iso).getTime()) / 1000));
  return s < 120 ? `${s} s ago` : `${Math.round(s / 60)} min ago`;
}

function showError(msg) {
  const e = $("error");
  e.textContent = msg;
  e.hidden = false;
}

function clearError() {
  $("error").hidden = true;
}

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function api(method, path, body) {
  const headers = { authorization: `Bearer ${token}` };
  if (body !== undefined) headers["content-type"] = "application/json";
  let res;
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (err) {
    throw new ApiError(0, `cannot reach the server: ${err.message}`);
  }
  const text = await res.text();
  let data;
  try {
    data = text ? JSON.parse(text) : {};
  } catch {
    throw new ApiError(res.status, `the server answered ${res.status} with something that is not JSON`);
  }
  if (!res.ok) {
    if (res.status === 401) askToken();
    throw new ApiError(res.status, data?.error?.message || `HTTP ${res.status}`);
  }
  return data;
}

/** Runs an async step, showing its error in the banner instead of leaving a blank page. */
async function guarded(fn) {
  try {
    await fn();
  } catch (err) {
    showError(err instanceof ApiError ? err.message : `unexpected error: ${err?.message ?? err}`);
  }
}

function askToken() {
  $("login").hidden = false;
  $("overview").hidden = true;
  $("jobpage").hidden = true;
}

$("login-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  token = $("login-token").value.trim();
  sessionStorage.setItem("balsam-token", token);
  $("login").hidden = true;
  start();
});

// ---- at most one run per `ms` for each key, the last request not lost
const pacing = new Map();

function throttled(key, ms, fn) {
  const p = pacing.get(key) ?? { last: 0, timer: undefined };
  pacing.set(key, p);
  if (p.timer) return;
  const wait = Math.max(0, p.last + ms - Date.now());
  p.timer = setTimeout(() => {
    p.timer = undefined;
    p.last = Date.now();
    void guarded(fn);
  }, wait);
}

// ---- live counts
let events;
let lastStates;

function connectEvents() {
  events?.close();
  events = new EventSource(`/api/events?token=${encodeURIComponent(token)}`);
  events.addEventListener("open", () => {
    $("live").textContent = "live";
    $("live").className = "badge on";
  });
  events.addEventListener("error", () => {
    $("live").textContent = "reconnecting";
    $("live").className = "badge off";
  });
  events.addEventListener("states", (ev) => {
    lastStates = JSON.parse(ev.data);
    renderStates(lastStates);
    if (!$("overview").hidden) {
      // Counts changed: the table page and the chart follow, at a bounded pace (one page query each).
      throttled("jobs", 2000, loadJobs);
      throttled("chart", 5000, refreshChart);
    }
  });
}

function renderStates(body) {
  const wfs = Object.keys(body.byWorkflow).sort();
  const used = STATES.filter((s) => (body.byState[s] ?? 0) > 0);
  const thead = $("states").tHead;
  const tbody = $("states").tBodies[0];
  thead.replaceChildren(el("tr", {}, el("th", {}, "workflow"), ...used.map((s) => el("th", { class: `s-${s}` }, s)), el("th", {}, "total")));
  const rows = wfs.map((wf) => {
    const counts = body.byWorkflow[wf];
    const total = Object.values(counts).reduce((a, b) => a + b, 0);
    return el(
      "tr",
      { dataset: { workflow: wf } },
      el("td", {}, wf),
      ...used.map((s) => el("td", { class: "num", dataset: { state: s, workflow: wf } }, counts[s] ?? 0)),
      el("td", { class: "num", dataset: { state: "total", workflow: wf } }, total),
    );
  });
  rows.push(
    el("tr", { class: "total" }, el("th", {}, "all"), ...used.map((s) => el("th", { class: "num", dataset: { state: s, workflow: "*" } }, body.byState[s] ?? 0)), el("th", { class: "num", dataset: { state: "total", workflow: "*" } }, body.total)),
  );
  tbody.replaceChildren(...rows);
  $("summary").textContent = `${body.total} jobs in ${wfs.length} workflow${wfs.length === 1 ? "" : "s"}`;
  $("workflows").replaceChildren(...wfs.map((wf) => el("option", { value: wf })));
}

// ---- throughput chart
let plot;

async function refreshChart() {
  const { perMinute, complete } = await api("GET", "/api/throughput?minutes=180");
  $("chart-note").textContent = complete ? "" : "(still reading earlier finishes)";
  const xs = perMinute.map((p) => new Date(p.t).getTime() / 1000);
  const ys = perMinute.map((p) => p.finished);
  const width = Math.max(300, $("chart").clientWidth || 800);
  if (!window.uPlot) throw new Error("the chart library did not load");
  if (!plot) {
    plot = new window.uPlot(
      { width, height: 180, series: [{}, { label: "finished/min", stroke: "#2458a6", fill: "rgba(36,88,166,.12)" }], axes: [{}, { label: "jobs" }], scales: { x: { time: true } } },
      [xs, ys],
      $("chart"),
    );
  } else {
    plot.setData([xs, ys]);
  }
}

// ---- launchers and launches
async function refreshLaunchers() {
  const [{ launchers }, { launches, errors }] = await Promise.all([api("GET", "/api/launchers"), api("GET", "/api/launches")]);
  $("launchers").tBodies[0].replaceChildren(
    ...(launchers.length
      ? launchers.map((l) =>
          el("tr", { dataset: { launcher: l.id } }, el("td", {}, l.host), el("td", {}, l.pid), el("td", {}, l.mode), el("td", {}, (l.nodes || []).join(", ")), el("td", { class: "num" }, l.inFlight ?? "–"), el("td", {}, l.workflows ? l.workflows.join(", ") : "(all)"), el("td", { title: when(l.lastHeartbeat) }, ago(l.lastHeartbeat)), el("td", {}, l.alive ? "yes" : "no")),
        )
      : [el("tr", {}, el("td", { colspan: "8", class: "muted" }, "no launcher is running"))]),
  );
  $("launches").tBodies[0].replaceChildren(
    ...(launches.length
      ? launches.map((d) => el("tr", {}, el("td", {}, d.id.slice(0, 8)), el("td", {}, d.schedulerId), el("td", {}, d.queue), el("td", { class: "num" }, d.nodes), el("td", { class: "num" }, d.wallTimeMinutes), el("td", {}, d.jobMode), el("td", {}, d.wfFilter.length ? d.wfFilter.join(", ") : "(all)"), el("td", {}, d.state), el("td", {}, when(d.submittedAt))))
      : [el("tr", {}, el("td", { colspan: "9", class: "muted" }, errors.length ? errors.join("; ") : "no batch launches recorded"))]),
  );
}

// ---- job table, paged on the server
let cursors = [null];
let pageIndex = 0;

function filterQuery() {
  const q = new URLSearchParams();
  for (const k of ["workflow", "name", "state", "id"]) {
    const v = $(`f-${k}`).value.trim();
    if (v) q.set(k, v);
  }
  // Tags: `k=v` words separated by spaces, each one `tag` parameter (all must match).
  for (const t of $("f-tag").value.trim().split(/\s+/).filter(Boolean)) q.append("tag", t);
  return q;
}

// Only the newest request's answer is shown: an older one arriving late would show another filter's jobs.
let jobsRequest = 0;

async function loadJobs() {
  const mine = ++jobsRequest;
  const q = filterQuery();
  q.set("limit", String(PAGE));
  const after = cursors[pageIndex];
  if (after) q.set("after", after);
  const { jobs, next } = await api("GET", `/api/jobs?${q}`);
  if (mine !== jobsRequest) return;
  cursors[pageIndex + 1] = next;
  $("jobs").tBodies[0].replaceChildren(
    ...(jobs.length
      ? jobs.map((j) =>
          el("tr", { dataset: { job: j._id } }, el("td", {}, el("a", { href: `#/job/${j._id}`, class: "jobid" }, j._id.slice(0, 8))), el("td", { class: "name" }, j.name), el("td", {}, j.workflow), el("td", {}, j.application), el("td", { class: `state s-${j.state}` }, j.state), el("td", {}, when(j.updatedAt))),
        )
      : [el("tr", {}, el("td", { colspan: "6", class: "muted" }, "no jobs match"))]),
  );
  $("prev").disabled = pageIndex === 0;
  $("next").disabled = !next;
  $("page-info").textContent = jobs.length ? `jobs ${pageIndex * PAGE + 1}–${pageIndex * PAGE + jobs.length}` : "";
}

$("filter").addEventListener("submit", (ev) => {
  ev.preventDefault();
  cursors = [null];
  pageIndex = 0;
  void guarded(async () => {
    await loadJobs();
    clearError();
  });
});
$("f-clear").addEventListener("click", () => {
  for (const k of ["workflow", "name", "state", "id", "tag"]) $(`f-${k}`).value = "";
  cursors = [null];
  pageIndex = 0;
  void guarded(loadJobs);
});
$("next").addEventListener("click", () => {
  pageIndex++;
  void guarded(loadJobs);
});
$("prev").addEventListener("click", () => {
  pageIndex = Math.max(0, pageIndex - 1);
  void guarded(loadJobs);
});
$("f-state").append(...STATES.map((s) => el("option", { value: s }, s)));

// ---- one job
let jobTimer;
let shownJob;

const FIELD_ORDER = ["_id", "name", "workflow", "application", "args", "description", "state", "parents", "data", "numNodes", "ranksPerNode", "threadsPerRank", "threadsPerCore", "cpuAffinity", "nodePackingCount", "coscheduleNumNodes", "wallTimeMinutes", "mpiFlags", "environVars", "tags", "inputFiles", "stageInUrl", "stageOutFiles", "stageOutUrl", "postErrorHandler", "postTimeoutHandler", "autoTimeoutRetry", "waitForParents", "workdir", "preprocess", "postprocess", "lock", "attempts", "exitCode", "runtimeSeconds", "queuedLaunch", "createdAt", "updatedAt"];

function fieldText(v) {
  if (v === null || v === undefined) return "";
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}

async function loadJob(id) {
  const job = await api("GET", `/api/jobs/${encodeURIComponent(id)}`);
  shownJob = job;
  $("job-title").textContent = `${job.name} `;
  $("job-title").append(el("span", { class: `state s-${job.state}`, id: "job-state" }, job.state));
  const keys = [...FIELD_ORDER.filter((k) => k in job), ...Object.keys(job).filter((k) => !FIELD_ORDER.includes(k) && k !== "stateHistory")];
  $("job-fields").tBodies[0].replaceChildren(...keys.map((k) => el("tr", {}, el("th", {}, k), el("td", { dataset: { field: k } }, fieldText(job[k])))));
  $("job-history").tBodies[0].replaceChildren(...job.stateHistory.map((h) => el("tr", {}, el("td", {}, when(h.at)), el("td", { class: `state s-${h.state}` }, h.state), el("td", {}, h.message))));
  $("kill").disabled = FINAL.has(job.state);
  $("rerun").disabled = !FINAL.has(job.state);
  try {
    const out = await api("GET", `/api/jobs/${job._id}/output?lines=200`);
    $("job-output-path").textContent = out.path;
    $("job-output").textContent = out.text;
  } catch (err) {
    if (!(err instanceof ApiError) || err.status !== 404) throw err;
    $("job-output-path").textContent = "";
    $("job-output").textContent = err.message;
  }
  const { jobs: kids } = await api("GET", `/api/jobs/${job._id}/children`);
  $("job-children").replaceChildren(...(kids.length ? kids.map((k) => el("li", {}, el("a", { href: `#/job/${k._id}` }, k.name), ` ${k.state}`)) : [el("li", { class: "muted" }, "none")]));
  return job;
}

$("kill").addEventListener("click", () =>
  guarded(async () => {
    if (!shownJob || !confirm(`Kill job ${shownJob.name} (${shownJob._id}) and every job depending on it?`)) return;
    const { killed } = await api("POST", `/api/jobs/${shownJob._id}/kill`, { recursive: true });
    clearError();
    if (killed.length === 0) showError("nothing to kill: already final");
    await loadJob(shownJob._id);
  }),
);

$("rerun").addEventListener("click", () =>
  guarded(async () => {
    if (!shownJob || !confirm(`Run job ${shownJob.name} (${shownJob._id}) again?`)) return;
    const r = await api("POST", `/api/jobs/${shownJob._id}/rerun`, {});
    clearError();
    if (r.skipped.length) showError(r.skipped.map((s) => `${s.id}: ${s.reason}`).join("\n"));
    // A job running again is followed until it is final.
    void route();
  }),
);

$("delete").addEventListener("click", () =>
  guarded(async () => {
    if (!shownJob || !confirm(`Delete job ${shownJob.name} (${shownJob._id})? Its record goes; its files stay.`)) return;
    await api("DELETE", `/api/jobs?id=${encodeURIComponent(shownJob._id)}`);
    location.hash = "#/";
  }),
);

// ---- routing
let overviewTimers = [];

function stopTimers() {
  clearInterval(jobTimer);
  jobTimer = undefined;
  for (const t of overviewTimers) clearInterval(t);
  overviewTimers = [];
}

async function route() {
  stopTimers();
  clearError();
  const m = /^#\/job\/(.+)$/.exec(location.hash);
  if (m) {
    $("overview").hidden = true;
    $("jobpage").hidden = false;
    const id = decodeURIComponent(m[1]);
    // Nothing of the job shown before stays on screen while this one loads.
    shownJob = undefined;
    $("job-title").textContent = "loading…";
    for (const t of ["job-fields", "job-history"]) $(t).tBodies[0].replaceChildren();
    for (const t of ["job-output", "job-output-path", "job-children"]) $(t).replaceChildren();
    await guarded(async () => {
      const job = await loadJob(id);
      // A job still moving is re-read, so a kill or a finish shows without reload.
      if (!FINAL.has(job.state)) {
        jobTimer = setInterval(() => guarded(async () => {
          const j = await loadJob(id);
          if (FINAL.has(j.state)) clearInterval(jobTimer);
        }), 1000);
      }
    });
    return;
  }
  $("jobpage").hidden = true;
  $("overview").hidden = false;
  if (lastStates) renderStates(lastStates);
  await Promise.all([guarded(loadJobs), guarded(refreshChart), guarded(refreshLaunchers)]);
  overviewTimers.push(setInterval(() => guarded(refreshLaunchers), 5000), setInterval(() => guarded(refreshChart), 30000));
}

function start() {
  if (!token) {
    askToken();
    return;
  }
  connectEvents();
  void route();
}

window.addEventListener("hashchange", () => void route());
start();
