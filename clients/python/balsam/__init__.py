"""Balsam on MongoDB and BullMQ, from Python: a client of `balsam web`.

    from balsam import Balsam
    b = Balsam()                                   # BALSAM_DB_PATH's web.json
    jobs = b.jobs.add_many([{"name": f"task{i}", "workflow": "TEST", "application": "polynome2.run",
                             "args": "'{...}'"} for i in range(4)])
    for r in b.results(jobs):                      # pushed by the server, not polled
        print(r.name, r.state, r.result)
    b.jobs.filter(name__contains="task", workflow="TEST").delete()

Balsam 0.x scripts: ``from balsam.launcher.dag import BalsamJob``.
"""
from .client import AppsApi, Balsam, Result, default_client
from .errors import (
    BadRequest,
    BalsamError,
    ConfigError,
    Conflict,
    NotFound,
    ServerError,
    TooLarge,
    Unauthorized,
    Unreachable,
    WaitTimeout,
)
from .fields import FINAL_STATES, JOB_STATES
from .history import StateHistory
from .jobs import Job, JobsApi
from .query import JobQuery
from .reports import error_report, throughput_report, utilization_report

__version__ = "0.1.0"


def current_job() -> Job:
    """The job this process runs as (BALSAM_JOB_ID), through the default client."""
    return default_client().current_job()


def spawn_child(**overrides) -> Job:
    """A child of the current job with its fields and ``overrides`` (see Balsam.spawn_child)."""
    return default_client().spawn_child(**overrides)


__all__ = [
    "AppsApi", "Balsam", "Result", "Job", "JobQuery", "JobsApi", "StateHistory", "BalsamError", "BadRequest", "ConfigError",
    "Conflict", "NotFound", "ServerError", "TooLarge", "Unauthorized", "Unreachable", "WaitTimeout",
    "JOB_STATES", "FINAL_STATES", "current_job", "spawn_child", "default_client",
    "utilization_report", "throughput_report", "error_report",
]
