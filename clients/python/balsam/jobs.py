"""Jobs in Python's idiom (and Django's, as Balsam 0.x wrote them):
``jobs.filter(name__contains="task", workflow="TEST").delete()``.
"""
from __future__ import annotations

import json
import urllib.parse
from datetime import datetime
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Tuple, Union

from . import fields as F
from ._http import as_query
from .errors import BadRequest

if TYPE_CHECKING:  # pragma: no cover
    from .client import Balsam

PAGE = 1000
#: The server takes at most this many jobs per bulk add.
BULK_MAX = 10_000


def _q(id_: str) -> str:
    return urllib.parse.quote(id_, safe="")


def _parse_date(v: Any) -> Any:
    if not isinstance(v, str):
        return v
    try:
        # Python < 3.11 does not read a trailing Z.
        return datetime.fromisoformat(v[:-1] + "+00:00" if v.endswith("Z") else v)
    except ValueError:
        return v


class Job:
    """One Balsam job. Fields read as attributes in 0.x snake_case
    (``job.num_nodes``, ``job.args`` or ``job.application_args``,
    ``job.job_id``) or camelCase; assigning one and calling ``save()``
    changes it on the server. A Job made directly (``Job(name=..., ...)``)
    is added by its first ``save()``."""

    def __init__(self, _doc: Optional[Dict[str, Any]] = None, _client: Optional["Balsam"] = None, **fields: Any):
        object.__setattr__(self, "_client", _client)
        object.__setattr__(self, "_doc", dict(_doc or {}))
        object.__setattr__(self, "_saved", self._snapshot())
        for k, v in fields.items():
            setattr(self, k, v)

    # -- reading ---------------------------------------------------------
    def _snapshot(self) -> Dict[str, str]:
        return {k: json.dumps(v, sort_keys=True) for k, v in self._doc.items()}

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        key = F.key_of(name)
        if key is None:
            raise AttributeError(f"Job has no field '{name}'")
        if key not in self._doc:
            if self._doc.get("_id") is None and key in F.SETTABLE:
                return None
            raise AttributeError(f"Job has no field '{name}' in what the server sent")
        v = self._doc[key]
        return _parse_date(v) if key in F.DATES else v

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("_"):
            object.__setattr__(self, name, value)
            return
        key = F.key_of(name)
        if key is None:
            raise BadRequest(f"unknown job field '{name}'")
        if key == "state" and self._doc.get("_id"):
            raise BadRequest("set a job's state with update_state(state, message), which the transition table checks")
        self._doc[key] = F.to_spec({key: value}, allowed=[key])[key]

    @property
    def job_id(self) -> Optional[str]:
        return self._doc.get("_id")

    pk = job_id
    id = job_id

    @property
    def result(self) -> Any:
        """What the job's run printed as ``DH-OUTPUT:`` / ``BALSAM-RESULT:`` (its ``data.result``)."""
        return (self._doc.get("data") or {}).get("result")

    def to_dict(self) -> Dict[str, Any]:
        """The job as the API sent it (camelCase)."""
        return json.loads(json.dumps(self._doc))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Job) and self.job_id is not None and self.job_id == other.job_id

    def __hash__(self) -> int:
        return hash(self.job_id)

    def __repr__(self) -> str:
        return f"<Job {self._doc.get('name')!r} {self._doc.get('workflow')!r} {self._doc.get('state')} {self.job_id}>"

    # -- writing ---------------------------------------------------------
    def _api(self) -> "Balsam":
        if self._client is None:
            from .client import default_client

            object.__setattr__(self, "_client", default_client())
        return self._client  # type: ignore[return-value]

    def _load(self, doc: Dict[str, Any]) -> "Job":
        object.__setattr__(self, "_doc", dict(doc))
        object.__setattr__(self, "_saved", self._snapshot())
        return self

    def save(self) -> "Job":
        """Adds the job if it is new; else sends the fields changed since it was read."""
        api = self._api()
        if not self._doc.get("_id"):
            spec = {k: v for k, v in self._doc.items() if k in F.SETTABLE and v is not None}
            return self._load(api.transport.request("POST", "/api/jobs", body=spec))
        changed = {k: v for k, v in self._doc.items() if self._saved.get(k) != json.dumps(v, sort_keys=True)}
        refused = [F.KEY_TO_SNAKE.get(k, k) for k in changed if k not in F.EDITABLE]
        if refused:
            raise BadRequest(f"cannot save changes to {', '.join(sorted(refused))} (not editable)")
        if not changed:
            return self
        return self._load(api.transport.request("PATCH", f"/api/jobs/{_q(self.job_id)}", body={"set": changed}))

    def update_state(self, state: str, message: str = "") -> "Job":
        """Moves the job to ``state`` (checked by the server's transition table), as 0.x's ``job.update_state``."""
        body = {"state": state, "message": message}
        return self._load(self._api().transport.request("PATCH", f"/api/jobs/{_q(self._need_id())}", body=body))

    def refresh_from_db(self) -> "Job":
        return self._load(self._api().jobs.get(self._need_id())._doc)

    refresh = refresh_from_db

    def get_parents(self) -> List["Job"]:
        return [self._api().jobs.get(p, job_class=type(self)) for p in self._doc.get("parents", [])]

    def get_children(self) -> List["Job"]:
        return self._api().jobs.children(self._need_id(), job_class=type(self))

    def kill(self, recursive: bool = True) -> List[str]:
        return self._api().jobs.kill(self._need_id(), recursive=recursive)

    def delete(self, force: bool = False) -> int:
        return self._api().jobs.filter(job_id=self._need_id()).delete(force=force)

    def _need_id(self) -> str:
        if not self._doc.get("_id"):
            raise BadRequest("this job has not been saved yet: call save() first")
        return self._doc["_id"]


# -- queries --------------------------------------------------------------

_OPS: Dict[str, Callable[[Any, Any], bool]] = {
    "exact": lambda a, b: a == b,
    "iexact": lambda a, b: isinstance(a, str) and a.lower() == str(b).lower(),
    "contains": lambda a, b: b in a if isinstance(a, (str, list)) else False,
    "icontains": lambda a, b: isinstance(a, str) and str(b).lower() in a.lower(),
    "startswith": lambda a, b: isinstance(a, str) and a.startswith(b),
    "istartswith": lambda a, b: isinstance(a, str) and a.lower().startswith(str(b).lower()),
    "endswith": lambda a, b: isinstance(a, str) and a.endswith(b),
    "iendswith": lambda a, b: isinstance(a, str) and a.lower().endswith(str(b).lower()),
    "in": lambda a, b: a in b,
    "gt": lambda a, b: a is not None and a > b,
    "gte": lambda a, b: a is not None and a >= b,
    "lt": lambda a, b: a is not None and a < b,
    "lte": lambda a, b: a is not None and a <= b,
    "isnull": lambda a, b: (a is None) == bool(b),
}

Predicate = Tuple[str, str, Any, bool]  # key, op, value, negated


def _parse_lookup(lookup: str, value: Any) -> Tuple[str, str, Any]:
    name, _, op = lookup.partition("__")
    op = op or "exact"
    key = F.key_of(name)
    if key is None:
        raise BadRequest(f"unknown job field '{name}' in filter {lookup}=")
    if op not in _OPS:
        raise BadRequest(f"unknown lookup '__{op}' in filter {lookup}= (known: {', '.join(sorted(_OPS))})")
    if op == "in":
        if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
            raise BadRequest(f"{lookup}= needs a list, not {value!r}")
        value = list(value)
    if key == "_id":
        value = [getattr(v, "job_id", v) for v in value] if op == "in" else getattr(value, "job_id", value)
    if key in F.DATES and isinstance(value, datetime):
        value = value.isoformat()
    return key, op, value


class JobQuery:
    """A lazy selection of jobs. What the API can select (name contains,
    workflow, state, id prefix) is selected by the server; any other lookup
    is checked here on the jobs the server sends, and then delete()/update()
    act on the matching ids one by one."""

    def __init__(self, client: "Balsam", selectors: Optional[Dict[str, Any]] = None, preds: Optional[List[Predicate]] = None, job_class: type = Job):
        self._client = client
        self._sel: Dict[str, Any] = dict(selectors or {})
        self._preds: List[Predicate] = list(preds or [])
        self._job_class = job_class

    def _with(self, lookups: Mapping[str, Any], negate: bool) -> "JobQuery":
        q = JobQuery(self._client, self._sel, self._preds, self._job_class)
        for lookup, value in lookups.items():
            key, op, value = _parse_lookup(lookup, value)
            if key == "state" and op in ("exact", "in"):
                for s in value if op == "in" else [value]:
                    if s not in F.JOB_STATES:
                        raise BadRequest(f"unknown state '{s}' (states: {', '.join(F.JOB_STATES)})")
            if not negate and q._select(key, op, value):
                continue
            q._preds.append((key, op, value, negate))
        return q

    def _select(self, key: str, op: str, value: Any) -> bool:
        """Puts a lookup into the server's selectors when the API has one for it."""
        if key == "name" and op == "contains" and isinstance(value, str) and value and "name" not in self._sel:
            self._sel["name"] = value
            return True
        if key == "workflow" and op == "exact" and isinstance(value, str) and "workflow" not in self._sel:
            self._sel["workflow"] = value
            return True
        if key == "state" and op in ("exact", "in") and "state" not in self._sel:
            states = value if op == "in" else [value]
            if not states or not all(isinstance(s, str) for s in states):
                return False
            self._sel["state"] = ",".join(states)
            return True
        if key == "_id" and op in ("exact", "startswith") and isinstance(value, str) and value and "id" not in self._sel:
            self._sel["id"] = value
            # A prefix selector; an exact id shorter than a full one must still match whole.
            return op == "startswith" or len(value) == 36
        return False

    def filter(self, **lookups: Any) -> "JobQuery":
        return self._with(lookups, negate=False)

    def exclude(self, **lookups: Any) -> "JobQuery":
        return self._with(lookups, negate=True)

    def all(self) -> "JobQuery":
        return self

    def _matches(self, doc: Dict[str, Any]) -> bool:
        for key, op, value, neg in self._preds:
            if _OPS[op](doc.get(key), value) == neg:
                return False
        return True

    def _docs(self) -> Iterator[Dict[str, Any]]:
        after = None
        while True:
            query = as_query(self._sel) + [("limit", str(PAGE))]
            if after:
                query.append(("after", after))
            page = self._client.transport.request("GET", "/api/jobs", query=query)
            for doc in page.get("jobs", []):
                if self._matches(doc):
                    yield doc
            after = page.get("next")
            if not after:
                return

    def __iter__(self) -> Iterator[Job]:
        for doc in self._docs():
            yield self._job_class(doc, self._client)

    def __len__(self) -> int:
        return self.count()

    def __getitem__(self, i: Union[int, slice]) -> Any:
        return list(self)[i]

    def __bool__(self) -> bool:
        return self.exists()

    def exists(self) -> bool:
        return self.first() is not None

    def first(self) -> Optional[Job]:
        for j in self:
            return j
        return None

    def get(self, **lookups: Any) -> Job:
        """The one job matching; NotFound for none, Conflict for several (as Django's get)."""
        from .errors import Conflict, NotFound

        found = list(self.filter(**lookups)) if lookups else list(self)
        if not found:
            raise NotFound(f"no job matches {self._describe(lookups)}")
        if len(found) > 1:
            raise Conflict(f"{len(found)} jobs match {self._describe(lookups)}: {', '.join(j.job_id[:8] for j in found[:5])}")
        return found[0]

    def _describe(self, lookups: Mapping[str, Any]) -> str:
        parts = [f"{k}={v!r}" for k, v in self._sel.items()] + [f"{k}={v!r}" for k, v in lookups.items()]
        return ", ".join(parts) or "the query"

    def count(self) -> int:
        if self._preds:
            return sum(1 for _ in self._docs())
        return int(self._client.transport.request("GET", "/api/jobs/count", query=as_query(self._sel))["count"])

    def by_state(self) -> Dict[str, int]:
        """Jobs per state; by the server when it can select them all."""
        if self._preds:
            out: Dict[str, int] = {}
            for d in self._docs():
                out[d["state"]] = out.get(d["state"], 0) + 1
            return out
        return dict(self._client.transport.request("GET", "/api/jobs/states", query=as_query(self._sel))["byState"])

    def delete(self, force: bool = False) -> int:
        """Deletes the matching jobs; returns how many. Running jobs are
        refused (Conflict, nothing deleted) unless ``force=True``."""
        extra = [("force", "true")] if force else []
        t = self._client.transport
        if not self._preds:
            return int(t.request("DELETE", "/api/jobs", query=as_query(self._sel) + extra)["deleted"])
        docs = list(self._docs())
        ids = [d["_id"] for d in docs]
        if not force:
            from .errors import Conflict

            running = [d for d in docs if d.get("state") in _LEASED]
            if running:
                raise Conflict(f"{len(running)} of these jobs are running ({', '.join(d['name'] for d in running[:5])}): delete(force=True) to delete them anyway")
        return sum(int(t.request("DELETE", "/api/jobs", query=[("id", i)] + extra)["deleted"]) for i in ids)

    def update(self, **fields: Any) -> int:
        """Sets fields on every matching job; returns how many changed.
        ``state=`` (with an optional ``message=``) goes through the
        transition table job by job."""
        message = fields.pop("message", "")
        state = fields.pop("state", None)
        t = self._client.transport
        spec = F.to_spec(fields, allowed=F.EDITABLE) if fields else {}
        if state is None and not self._preds:
            return int(t.request("PATCH", "/api/jobs", query=as_query(self._sel), body={"set": spec})["modified"])
        body: Dict[str, Any] = {}
        if spec:
            body["set"] = spec
        if state is not None:
            body.update(state=state, message=message)
        n = 0
        for i in [d["_id"] for d in self._docs()]:
            t.request("PATCH", f"/api/jobs/{_q(i)}", body=body)
            n += 1
        return n

    def __repr__(self) -> str:
        return f"<JobQuery {self._sel} +{len(self._preds)} local>"


_LEASED = ("STAGED_IN", "PREPROCESSED", "RUNNING", "RUN_DONE", "RUN_ERROR", "RUN_TIMEOUT", "POSTPROCESSED")


class JobsApi:
    """``balsam.jobs``: add, select, get, kill jobs."""

    def __init__(self, client: "Balsam"):
        self._client = client

    def add(self, **fields: Any) -> Job:
        """Adds one job from 0.x-style fields (``num_nodes=2``, ``environ_vars={...}``,
        ``application_args=...``) or the API's camelCase ones."""
        return Job(self._client.transport.request("POST", "/api/jobs", body=F.to_spec(fields)), self._client)

    def add_many(self, specs: Iterable[Mapping[str, Any]]) -> List[Job]:
        """Adds many jobs, all or nothing per 10,000 (the server's bulk limit)."""
        bodies = [F.to_spec(s) for s in specs]
        out: List[Job] = []
        for i in range(0, len(bodies), BULK_MAX):
            r = self._client.transport.request("POST", "/api/jobs/bulk", body={"jobs": bodies[i : i + BULK_MAX]})
            out.extend(Job(d, self._client) for d in r["jobs"])
        return out

    def filter(self, **lookups: Any) -> JobQuery:
        return JobQuery(self._client).filter(**lookups)

    def exclude(self, **lookups: Any) -> JobQuery:
        return JobQuery(self._client).exclude(**lookups)

    def all(self) -> JobQuery:
        return JobQuery(self._client)

    def count(self, **lookups: Any) -> int:
        return self.filter(**lookups).count()

    def get(self, job_id: Any, job_class: type = Job) -> Job:
        """The job with this id or unique id prefix (NotFound / Conflict otherwise)."""
        job_id = getattr(job_id, "job_id", job_id)
        if not isinstance(job_id, str) or not job_id:
            raise BadRequest(f"a job id is a non-empty string, not {job_id!r}")
        return job_class(self._client.transport.request("GET", f"/api/jobs/{_q(job_id)}"), self._client)

    def children(self, job_id: Any, job_class: type = Job) -> List[Job]:
        job_id = getattr(job_id, "job_id", job_id)
        r = self._client.transport.request("GET", f"/api/jobs/{_q(job_id)}/children")
        return [job_class(d, self._client) for d in r["jobs"]]

    def output(self, job_id: Any, lines: int = 100) -> str:
        """The last ``lines`` lines of the job's output file (its run and its pre/postprocess scripts)."""
        job_id = getattr(job_id, "job_id", job_id)
        return str(self._client.transport.request("GET", f"/api/jobs/{_q(job_id)}/output", query=[("lines", str(lines))])["text"])

    def kill(self, job_id: Any, recursive: bool = True) -> List[str]:
        """Kills a job (a running one through its launcher) and, with ``recursive``, its descendants; returns the killed ids."""
        job_id = getattr(job_id, "job_id", job_id)
        r = self._client.transport.request("POST", f"/api/jobs/{_q(job_id)}/kill", body={"recursive": bool(recursive)})
        return list(r["killed"])

    def add_dependency(self, parent: Any, child: Any) -> Tuple[Job, Job]:
        """Makes ``child`` wait for ``parent`` (ids, prefixes or Jobs); refuses cycles."""
        p = getattr(parent, "job_id", parent)
        c = getattr(child, "job_id", child)
        r = self._client.transport.request("POST", f"/api/jobs/{_q(c)}/parents", body={"parent": p})
        return Job(r["parent"], self._client), Job(r["child"], self._client)
