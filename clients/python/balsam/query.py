"""Selecting jobs in Django's idiom: ``jobs.filter(name__contains="task", workflow="TEST").delete()``."""
from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Tuple, Union

from . import fields as F
from ._http import as_query, quote_id as _q
from .errors import BadRequest

if TYPE_CHECKING:  # pragma: no cover
    from .client import Balsam
    from .jobs import Job

PAGE = 1000

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
    """A lazy selection of jobs. What the API can select (name, workflow,
    state, id) is selected by the server, and checked here too where the
    server's match is looser than Django's (name contains: case; an id
    prefix: any part); any other lookup is checked here on the jobs the
    server sends, and then delete()/update() act on the matching ids one by
    one."""

    def __init__(self, client: "Balsam", selectors: Optional[Dict[str, Any]] = None, preds: Optional[List[Predicate]] = None, job_class: Optional[type] = None):
        if job_class is None:
            from .jobs import Job as job_class  # jobs.py imports this module: not at its top
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
        if key == "tags" and op == "exact" and isinstance(value, Mapping):
            # Balsam 2's filter(tags={...}): jobs carrying all of these (others too), served by the tag index.
            words = [f"{k}={v}" for k, v in value.items()]
            self._sel["tag"] = list(self._sel.get("tag", [])) + words
            return True
        if key == "name" and op in ("contains", "icontains") and isinstance(value, str) and value and "name" not in self._sel:
            self._sel["name"] = value
            # The server's match ignores case, as icontains; Django's contains does not: checked here too.
            return op == "icontains"
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
            # The server's id selector matches any part of the id, ignoring case: it narrows, and the
            # prefix (or a whole id shorter than one) is checked here, so `startswith="a"` never takes every id with an "a".
            self._sel["id"] = value
            return op == "exact" and len(value) == 36
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
        # Every page is read before the first job is yielded, as Django evaluates a queryset whole: the
        # server's pages are offsets into an unsorted list, so a loop that changed or deleted the jobs it
        # read (update_state, delete) would shift the pages after it and skip jobs. A job seen twice
        # (pages shifted by others meanwhile) is yielded once.
        seen = set()
        docs: List[Dict[str, Any]] = []
        after = None
        while True:
            query = as_query(self._sel) + [("limit", str(PAGE))]
            if after:
                query.append(("after", after))
            page = self._client.transport.request("GET", "/api/jobs", query=query)
            for doc in page.get("jobs", []):
                if doc.get("_id") in seen:
                    continue
                seen.add(doc.get("_id"))
                if self._matches(doc):
                    docs.append(doc)
            after = page.get("next")
            if not after:
                return iter(docs)

    def __iter__(self) -> Iterator["Job"]:
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

    def first(self) -> Optional["Job"]:
        for j in self:
            return j
        return None

    def get(self, **lookups: Any) -> "Job":
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
