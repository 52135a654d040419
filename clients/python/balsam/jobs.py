"""Jobs in Python's idiom (and Django's, as Balsam 0.x wrote them):
``jobs.filter(name__contains="task", workflow="TEST").delete()``.
"""
from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Dict, Iterable, List, Mapping, Optional, Tuple

from . import fields as F
from ._http import quote_id as _q
from .errors import BadRequest
from .history import parse_date as _parse_date
from .model import ModelMethods
from .query import JobQuery

if TYPE_CHECKING:  # pragma: no cover
    from .client import Balsam

#: The server takes at most this many jobs per bulk add.
BULK_MAX = 10_000


class Job(ModelMethods):
    """One Balsam job. Fields read as attributes in 0.x snake_case
    (``job.num_nodes``, ``job.args`` or ``job.application_args``,
    ``job.job_id``) or camelCase; assigning one and calling ``save()``
    changes it on the server. A Job made directly (``Job(name=..., ...)``)
    is added by its first ``save()``. 0.x's model methods (``cute_id``,
    ``set_parents``, ``get_child_by_name``…) come from ModelMethods."""

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
        self._doc[key] = F.to_spec({name: value}, allowed=[key])[key]

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

    def _changed(self) -> Dict[str, Any]:
        return {k: v for k, v in self._doc.items() if self._saved.get(k) != json.dumps(v, sort_keys=True)}

    def _load(self, doc: Dict[str, Any], keep_changes: bool = False) -> "Job":
        """Takes the server's document; with ``keep_changes`` the fields set here and not yet saved stay set (and unsaved), as on a Django instance."""
        pending = self._changed() if keep_changes else {}
        object.__setattr__(self, "_doc", dict(doc))
        object.__setattr__(self, "_saved", self._snapshot())
        self._doc.update(pending)
        return self

    def save(self, force_insert: bool = False, force_update: bool = False, using: Any = None, update_fields: Optional[Iterable[str]] = None) -> "Job":
        """Adds the job if it is new; else sends the fields changed since it
        was read — only those named in ``update_fields`` when given (Django's
        save: the others stay changed here, unsaved; ``[]`` saves nothing).
        ``force_insert``/``force_update`` insist on adding/changing, as
        Django's; ``using`` is accepted and ignored (one database)."""
        api = self._api()
        if not self._doc.get("_id"):
            if force_update or update_fields is not None:
                raise BadRequest("cannot update a job that was never saved (force_update / update_fields): call save() to add it")
            spec = {k: v for k, v in self._doc.items() if k in F.SETTABLE and v is not None}
            return self._load(api.transport.request("POST", "/api/jobs", body=spec))
        if force_insert:
            raise BadRequest(f"job {self.job_id} is saved already: force_insert=True would add it twice")
        changed = self._changed()
        if update_fields is not None:
            keys = _update_keys(update_fields)
            changed = {k: v for k, v in changed.items() if k in keys}
        refused = [F.KEY_TO_SNAKE.get(k, k) for k in changed if k not in F.EDITABLE]
        if refused:
            raise BadRequest(f"cannot save changes to {', '.join(sorted(refused))} (not editable)")
        if not changed:
            return self
        doc = api.transport.request("PATCH", f"/api/jobs/{_q(self.job_id)}", body={"set": changed})
        return self._load(doc, keep_changes=update_fields is not None)

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


def _update_keys(update_fields: Iterable[str]) -> List[str]:
    """The API's names of save(update_fields=...); an unknown or read-only name is refused before anything is sent."""
    if isinstance(update_fields, (str, bytes)):
        raise BadRequest(f"update_fields takes a list of field names, not the string {update_fields!r}")
    keys = []
    for name in update_fields:
        key = F.key_of(name) if isinstance(name, str) else None
        if key is None:
            raise BadRequest(f"update_fields: unknown job field {name!r}")
        if key not in F.EDITABLE:
            raise BadRequest(f"update_fields: {name!r} cannot be saved ({'use update_state(state, message)' if key == 'state' else 'not editable'})")
        keys.append(key)
    return keys


class JobsApi:
    """``balsam.jobs``: add, select, get, kill jobs."""

    def __init__(self, client: "Balsam"):
        self._client = client

    def add(self, *, spawned_by: Any = None, **fields: Any) -> Job:
        """Adds one job from 0.x-style fields (``num_nodes=2``, ``environ_vars={...}``,
        ``application_args=...``) or the API's camelCase ones. With
        ``spawned_by`` (a job or id) its first history line says "spawned by
        [name | id8]", as 0.x's ``spawn_child`` wrote."""
        body = F.to_spec(fields)
        if spawned_by is not None:
            body["spawnedBy"] = str(getattr(spawned_by, "job_id", spawned_by))
        return Job(self._client.transport.request("POST", "/api/jobs", body=body), self._client)

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
