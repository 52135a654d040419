"""A job's state history: the API's ``{at, state, message}`` list, read also as 0.x's text.

Balsam 0.x kept ``state_history`` as text, one ``[timestamp STATE] message``
line per transition, so its scripts test it with ``in``::

    if "RUN_ERROR" in dag.current_job.state_history: ...

:class:`StateHistory` is the list (``h[-1]["message"]``) whose ``in`` with a
string, ``str()`` and string methods (``split``, ``count``, ``find``…) answer
as that text would.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Dict, Iterable, Optional

#: 0.x's timestamp format (``models.TIME_FMT``), in UTC as its ``timezone.now()``.
TIME_FMT = "%m-%d-%Y %H:%M:%S.%f"


def parse_date(v: Any) -> Any:
    """An API date (ISO-8601, maybe ending in Z) as an aware datetime; anything else as it is."""
    if not isinstance(v, str):
        return v
    try:
        # Python < 3.11 does not read a trailing Z.
        return datetime.fromisoformat(v[:-1] + "+00:00" if v.endswith("Z") else v)
    except ValueError:
        return v


def history_line(entry: Dict[str, Any]) -> str:
    """One entry as 0.x's ``history_line(state, message)`` wrote it: a newline, then ``[time STATE]`` right-aligned to 46, then the message."""
    at = parse_date(entry.get("at"))
    if isinstance(at, datetime):
        at = (at.astimezone(timezone.utc) if at.tzinfo else at).strftime(TIME_FMT)
    return f"\n[{at} {entry.get('state', '')}] ".rjust(46) + str(entry.get("message") or "")


class StateHistory(list):
    """The job's transitions, oldest first: a list of ``{"at", "state", "message"}``
    dicts that also reads as 0.x's history text (``str(h)``, ``"RUN_ERROR" in h``)."""

    def __init__(self, entries: Optional[Iterable[Dict[str, Any]]] = None):
        super().__init__(entries or [])

    def __str__(self) -> str:
        return "".join(history_line(e) for e in self)

    def __contains__(self, item: object) -> bool:
        if isinstance(item, str):
            return item in str(self)
        return list.__contains__(self, item)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, str):
            return str(self) == other
        return list.__eq__(self, other)

    def count(self, item: Any, *args: Any) -> int:  # type: ignore[override]
        """Lines of text as 0.x counted them (``h.count("RUNNING")``) for a string; list.count otherwise."""
        if isinstance(item, str):
            return str(self).count(item, *args)
        return list.count(self, item)

    def __getattr__(self, name: str) -> Any:
        # The rest of 0.x's str idioms (split, splitlines, find, startswith, strip…) on the text.
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return getattr(str(self), name)
        except AttributeError:
            raise AttributeError(f"state history has no attribute '{name}'") from None

    def times(self) -> Dict[str, datetime]:
        """When the job last entered each state (0.x's ``get_state_times``)."""
        return {e["state"]: parse_date(e["at"]) for e in self if isinstance(parse_date(e.get("at")), datetime)}
