"""``Balsam()``: one `balsam web` server, its jobs, apps and pushed results."""
from __future__ import annotations

import json
import os
import time
from typing import Any, Dict, Iterable, Iterator, List, NamedTuple, Optional

from . import fields as F
from ._http import Transport, discover
from .errors import BY_CODE, BadRequest, ConfigError, ServerError, WaitTimeout
from .fields import RUNNABLE_STATES
from .jobs import Job, JobsApi

#: One results stream asks the server for at most this long; a longer wait
#: opens the next stream for the ids still missing (no polling in between).
STREAM_CHUNK_S = 300.0
#: The socket may sit idle this much longer than the stream's own limit before the client calls the server gone.
STREAM_SLACK_S = 30.0


class Result(NamedTuple):
    """A job that reached a final state, as the results stream pushes it."""

    id: str
    name: str
    state: str
    result: Any
    job: Optional[Job]


class AppsApi:
    """``balsam.apps``: what executable a job's ``application`` names."""

    def __init__(self, client: "Balsam"):
        self._client = client

    def list(self) -> List[Dict[str, Any]]:
        return list(self._client.transport.request("GET", "/api/apps")["apps"])

    def get(self, name: str) -> Dict[str, Any]:
        from .errors import NotFound

        for a in self.list():
            if a.get("name") == name:
                return a
        raise NotFound(f"no app named '{name}'")

    def add(self, name: str, executable: str, **fields: Any) -> Dict[str, Any]:
        body = {"name": name, "executable": executable}
        body.update(fields)
        return self._client.transport.request("POST", "/api/apps", body=body)


class Balsam:
    """A connection to the `balsam web` of one Balsam database.

    ``Balsam()`` finds it from BALSAM_DB_PATH (the ``web.json`` the server
    writes there: address and token); ``Balsam(db_path=...)`` or
    ``Balsam(url=..., token=...)`` name it explicitly. Nothing is sent until
    the first call."""

    def __init__(self, url: Optional[str] = None, token: Optional[str] = None, db_path: Optional[str] = None, timeout: float = 60.0):
        u, t = discover(url, token, db_path)
        self.url = u
        self.transport = Transport(u, t, timeout)
        self.jobs = JobsApi(self)
        self.apps = AppsApi(self)

    def __repr__(self) -> str:
        return f"<Balsam {self.url}>"

    def health(self) -> Dict[str, Any]:
        return self.transport.request("GET", "/api/health")

    # -- results, pushed -------------------------------------------------
    def results(self, ids: Iterable[Any], timeout: Optional[float] = None) -> Iterator[Result]:
        """Each job of ``ids`` once, as it reaches a final state: those
        already final first, then each within milliseconds of its launcher
        recording it (the server's event stream; nothing is polled). Ends
        when all are delivered, or quietly at ``timeout`` seconds."""
        want = list(dict.fromkeys(getattr(i, "job_id", i) for i in ids))
        for i in want:
            if not isinstance(i, str) or not i:
                raise BadRequest(f"a job id is a non-empty string, not {i!r}")
        missing = set(want)
        deadline = None if timeout is None else time.monotonic() + timeout
        asked = False
        while missing:
            left = STREAM_CHUNK_S if deadline is None else min(STREAM_CHUNK_S, deadline - time.monotonic())
            # Asked once however short the time: with none left the server still sends the jobs already final.
            if left <= 0 and asked:
                return
            left = max(0.0, left)
            asked = True
            body = {"ids": [i for i in want if i in missing], "timeoutMs": int(left * 1000)}
            for event, data in self.transport.events("POST", "/api/results", body, timeout=left + STREAM_SLACK_S):
                if event == "end":
                    break
                if event == "error":
                    err = json.loads(data).get("error", {})
                    raise (BY_CODE.get(err.get("code")) or ServerError)(err.get("message") or "the results stream failed", code=err.get("code"))
                if event != "result":
                    continue
                r = json.loads(data)
                if r.get("id") not in missing:
                    continue
                missing.discard(r["id"])
                doc = r.get("job")
                yield Result(r["id"], r.get("name", ""), r.get("state", ""), r.get("result"), Job(doc, self) if doc else None)

    def wait(self, ids: Iterable[Any], timeout: Optional[float] = None) -> List[Result]:
        """Blocks until every job of ``ids`` is final; returns them in the
        order they finished. WaitTimeout after ``timeout`` seconds."""
        want = list(dict.fromkeys(getattr(i, "job_id", i) for i in ids))
        got = list(self.results(want, timeout=timeout))
        if len(got) < len(want):
            raise WaitTimeout(f"{len(want) - len(got)} of {len(want)} jobs were not final after {timeout:g} s")
        return got

    # -- reports (balsam.reports) ----------------------------------------
    def utilization_report(self, since: Any = None, **selectors: Any) -> Any:
        """``(times, running)``; see balsam.reports."""
        from .reports import utilization_report

        return utilization_report(self, since, **selectors)

    def throughput_report(self, since: Any = None, **selectors: Any) -> Any:
        """``(times, finished)``; see balsam.reports."""
        from .reports import throughput_report

        return throughput_report(self, since, **selectors)

    def error_report(self, since: Any = None, **selectors: Any) -> Any:
        """``(lines, counts)``; see balsam.reports."""
        from .reports import error_report

        return error_report(self, since, **selectors)

    # -- inside a job ----------------------------------------------------
    def current_job(self, job_class: type = Job) -> Job:
        """The job this code runs as: a launcher sets BALSAM_JOB_ID for every process it starts."""
        job_id = os.environ.get("BALSAM_JOB_ID")
        if not job_id:
            raise ConfigError("BALSAM_JOB_ID is not set: this is not running inside a Balsam job")
        job = self.jobs.get(job_id, job_class=job_class)
        try:
            ahead = float(os.environ.get("BALSAM_CLAIM_AFTER_MS") or 0) / 1000
        except ValueError:
            ahead = 0.0
        # Started ahead of its claim (DESIGN.md §7, BALSAM_CLAIM_AFTER_MS): the
        # launcher records it RUNNING within that delay, so answer that rather
        # than READY — as the TypeScript client's currentJob() does.
        deadline = time.monotonic() + ahead + 10
        while ahead > 0 and job.state in RUNNABLE_STATES and time.monotonic() < deadline:
            time.sleep(0.05)
            job = self.jobs.get(job_id, job_class=job_class)
        return job

    def spawn_child(self, **overrides: Any) -> Job:
        """A child of the current job, as 0.x's ``spawn_child(clone=True, ...)``:
        the current job's fields, changed by ``overrides``, its parents being
        the current job's parents and the current job — so it starts after
        the current job ends. Its first history line says "spawned by
        [name | id8]"."""
        me = self.current_job()
        return self.jobs.add(spawned_by=me, **clone_spec(me, overrides))


#: 0.x fields that its ``spawn_child`` set itself whatever was given (a new
#: child starts CREATED, with a fresh history, no lock) or that have no
#: meaning here (``tick``, a launcher's clock): accepted and left out.
SPAWN_IGNORED = frozenset(["state", "state_history", "stateHistory", "lock", "tick", "queued_launch", "queuedLaunch"])


def spawn_overrides(overrides: Dict[str, Any]) -> Dict[str, Any]:
    """A spawn's overrides without the fields 0.x's spawn_child overrode itself (SPAWN_IGNORED)."""
    return {k: v for k, v in overrides.items() if k not in SPAWN_IGNORED}


def clone_spec(job: Job, overrides: Dict[str, Any]) -> Dict[str, Any]:
    """The settable fields of ``job`` with ``overrides`` applied; its parents
    are the job's, the job, and any the overrides name (as the TypeScript
    client's spawnChild)."""
    overrides = spawn_overrides(overrides)
    doc = job.to_dict()
    spec: Dict[str, Any] = {k: v for k, v in doc.items() if k in F.SETTABLE and k != "parents"}
    # The parent's recorded result is its run's output, not the clone's:
    # copied, it would pass for the child's own result if the child printed none.
    data = dict(spec.get("data") or {})
    data.pop("result", None)
    spec["data"] = data
    extra = F.to_spec(overrides)
    more = extra.pop("parents", [])
    spec.update(extra)
    spec["parents"] = list(dict.fromkeys(list(doc.get("parents") or []) + [doc["_id"]] + list(more)))
    return spec


_default: Optional[Balsam] = None


def default_client() -> Balsam:
    """The process's shared ``Balsam()`` (BALSAM_DB_PATH), made on first use."""
    global _default
    if _default is None:
        _default = Balsam()
    return _default
