"""Balsam 0.x's reports, for a notebook: ``times, running = utilization_report()``.

0.x's ``balsam.core.models`` had ``utilization_report()`` and
``throughput_report()`` returning ``(times, values)`` for matplotlib; these
return the same shapes, computed by the server from the jobs' state
histories exactly as ``balsam report KIND --csv`` computes them (one
implementation, libs/models/reports.ts)::

    import matplotlib.pyplot as plt
    from balsam.reports import utilization_report
    times, running = utilization_report(workflow="TEST")
    plt.step(times, running, where="post")

Selectors: ``workflow`` (exact), ``name`` (contains), ``state``, ``id``
(prefix), ``tags`` (a dict: jobs carrying all of them); ``since``: a
datetime or an ISO string.
"""
from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Tuple, Union

from ._http import as_query

if TYPE_CHECKING:  # pragma: no cover
    from .client import Balsam

Since = Union[datetime, str, None]


def _query(selectors: Mapping[str, Any], since: Since) -> List[Tuple[str, str]]:
    sel: Dict[str, Any] = {}
    for k, v in selectors.items():
        if v is None:
            continue
        if k == "tags":
            sel["tag"] = [f"{tk}={tv}" for tk, tv in dict(v).items()]
        elif k == "state" and not isinstance(v, str):
            sel["state"] = ",".join(v)
        elif k in ("workflow", "name", "state", "id"):
            sel[k] = str(v)
        else:
            from .errors import BadRequest

            raise BadRequest(f"unknown report selector '{k}' (workflow, name, state, id, tags)")
    if since is not None:
        sel["since"] = since.isoformat() if isinstance(since, datetime) else str(since)
    return as_query(sel)


def _parse_time(s: str) -> datetime:
    # The server sends ISO 8601 in UTC with a 'Z', which fromisoformat reads only from Python 3.11.
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


def _series(client: "Balsam", kind: str, since: Since, selectors: Mapping[str, Any]) -> Tuple[List[datetime], List[int]]:
    r = client.transport.request("GET", f"/api/reports/{kind}", query=_query(selectors, since))
    return [_parse_time(t) for t in r["times"]], [int(v) for v in r["values"]]


def utilization_report(client: Optional["Balsam"] = None, since: Since = None, **selectors: Any) -> Tuple[List[datetime], List[int]]:
    """``(times, running)``: after ``times[i]``, ``running[i]`` jobs were running (a step function)."""
    return _series(_client(client), "utilization", since, selectors)


def throughput_report(client: Optional["Balsam"] = None, since: Since = None, **selectors: Any) -> Tuple[List[datetime], List[int]]:
    """``(times, finished)``: by ``times[i]``, ``finished[i]`` jobs had finished (counted from ``since``)."""
    return _series(_client(client), "throughput", since, selectors)


def error_report(client: Optional["Balsam"] = None, since: Since = None, **selectors: Any) -> Tuple[List[str], List[int]]:
    """``(lines, counts)``: the failed jobs grouped by their last error line, most frequent first.
    (0.x's error_report binned RUN_ERROR times per minute; this says *why* jobs failed.)"""
    r = _client(client).transport.request("GET", "/api/reports/errors", query=_query(selectors, since))
    return [g["line"] for g in r["errors"]], [int(g["count"]) for g in r["errors"]]


def _client(client: Optional["Balsam"]) -> "Balsam":
    if client is not None:
        return client
    from .client import default_client

    return default_client()
