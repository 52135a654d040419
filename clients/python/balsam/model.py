"""Balsam 0.x's model methods on a job (``balsam.core.models.BalsamJob``), so
its pre/postprocess scripts run unchanged: ``job.cute_id``,
``job.get_child_by_name("sum")``, ``job.set_parents([rescue])``,
``job.read_file_in_workdir("out.dat")``, ``"RUN_ERROR" in job.state_history``.
"""
from __future__ import annotations

import os
from datetime import datetime
from typing import TYPE_CHECKING, Any, Dict, List

from ._http import quote_id
from .errors import BadRequest, Conflict, NotFound
from .history import StateHistory

if TYPE_CHECKING:  # pragma: no cover
    from .jobs import Job


class NotFoundValue(NotFound, ValueError):
    """Where 0.x raised ValueError for something missing (no such child, no such file): both kinds catch it."""


class ConflictValue(Conflict, ValueError):
    """Where 0.x raised ValueError for more than one match: both kinds catch it."""


class ModelMethods:
    """Mixed into :class:`balsam.Job`; every method works on what the server sent."""

    _doc: Dict[str, Any]

    @property
    def cute_id(self) -> str:
        """``[name | first 8 of id]``, as 0.x's logs and "spawned by" lines name a job."""
        short = str(self._doc.get("_id") or "")[:8]
        name = self._doc.get("name")
        return f"[{name} | {short}]" if name else f"[{short}]"

    @property
    def num_ranks(self) -> int:
        return int(self._doc.get("numNodes", 1)) * int(self._doc.get("ranksPerNode", 1))

    @property
    def required_num_cores(self) -> int:
        """Cores one rank set needs in serial mode, as 0.x: ranks × threads ÷ threads per core, at least 1."""
        d = self._doc
        return max(1, int(d.get("ranksPerNode", 1)) * int(d.get("threadsPerRank", 1)) // int(d.get("threadsPerCore", 1)))

    @property
    def working_directory(self) -> str:
        """The directory its launcher runs it in, known before it runs (``<db>/data/<workflow>/<name>_<id8>``), as 0.x."""
        return str(self._doc.get("workingDirectory") or self._doc.get("workdir") or "")

    @property
    def state_history(self) -> StateHistory:
        return StateHistory(self._doc.get("stateHistory") or [])

    def get_recent_state_str(self) -> str:
        """The last history line, as 0.x's text shows it: ``[time STATE] message``."""
        return str(self.state_history).split("\n")[-1].strip()

    def get_state_times(self) -> Dict[str, datetime]:
        return self.state_history.times()

    def get_parents_by_id(self) -> List[str]:
        return list(self._doc.get("parents") or [])

    def get_children_by_id(self: "Job") -> List[str]:
        return [c.job_id for c in self.get_children()]

    def get_child_by_name(self: "Job", name: str) -> "Job":
        """The one child named ``name``; ValueError (a NotFound / Conflict) for none or several, as 0.x."""
        found = [c for c in self.get_children() if c.name == name]
        if not found:
            raise NotFoundValue(f"No child named {name}")
        if len(found) > 1:
            raise ConflictValue(f"More than one child named {name}")
        return found[0]

    def set_parents(self: "Job", parents: Any) -> "Job":
        """Replaces the job's parents (jobs, ids or unique prefixes; ``[]`` for none), as 0.x's.
        The server refuses unknown ids and cycles; a job not started then waits
        for the new parents, or is queued when they have all finished."""
        if isinstance(parents, (str, bytes)):
            raise BadRequest(f"set_parents takes a list of jobs or ids, not the string {parents!r}")
        try:
            items = list(parents)
        except TypeError:
            raise BadRequest(f"set_parents takes a list of jobs or ids, not {parents!r}") from None
        ids = [str(getattr(p, "job_id", p)) for p in items]
        doc = self._api().transport.request("PUT", f"/api/jobs/{quote_id(self._need_id())}/parents", body={"parents": ids})
        return self._load(doc, keep_changes=True)

    def read_file_in_workdir(self, fname: str) -> str:
        """The text of ``fname`` in the job's working directory; ValueError (a NotFound) when it is not there, as 0.x."""
        path = os.path.join(self.working_directory, fname)
        if not os.path.exists(path):
            raise NotFoundValue(f"{fname} not found in working directory of {self.cute_id}")
        with open(path, encoding="utf-8") as f:
            return f.read()
