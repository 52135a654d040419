"""Balsam 0.x's ``balsam.launcher.dag``, on the web API.

0.x pre/postprocess scripts and searches run unchanged::

    from balsam.launcher.dag import BalsamJob
    BalsamJob.objects.filter(name__contains="task", workflow="TEST").delete()

    import balsam.launcher.dag as dag
    if dag.ERROR:                                  # run as the job's error handler
        dag.current_job.update_state("JOB_FINISHED", "handled error")
    dag.spawn_child(clone=True, application_args="--restart")

As in 0.x, ``current_job``, ``parents`` and ``children`` are read when the
module is imported inside a job (BALSAM_JOB_ID set); outside a job they are
None and importing sends nothing.
"""
from __future__ import annotations

import os
from typing import Any, List, Optional, Tuple

from ..client import clone_spec, default_client, spawn_overrides
from ..errors import BalsamError, Conflict
from ..jobs import Job, JobQuery

__all__ = [
    "JOB_ID", "TIMEOUT", "ERROR", "current_job", "parents", "children",
    "add_job", "add_dependency", "spawn_child", "kill", "BalsamJob",
]


class _Manager:
    """``BalsamJob.objects``: Django's manager shape over JobQuery."""

    def _q(self) -> JobQuery:
        return JobQuery(default_client(), job_class=BalsamJob)

    def filter(self, **lookups: Any) -> "_QuerySet":
        return _QuerySet.of(self._q().filter(**lookups))

    def exclude(self, **lookups: Any) -> "_QuerySet":
        return _QuerySet.of(self._q().exclude(**lookups))

    def all(self) -> "_QuerySet":
        return _QuerySet.of(self._q())

    def get(self, **lookups: Any) -> "BalsamJob":
        pk = lookups.pop("pk", None) or lookups.pop("job_id", None)
        if pk is not None and not lookups:
            return default_client().jobs.get(str(pk), job_class=BalsamJob)  # type: ignore[return-value]
        if pk is not None:
            lookups["job_id"] = str(pk)
        return self._q().get(**lookups)  # type: ignore[return-value]

    def create(self, **fields: Any) -> "BalsamJob":
        return add_job(**fields)

    def count(self) -> int:
        return self._q().count()


class _QuerySet(JobQuery):
    """A JobQuery whose delete() answers as Django's: ``(n, {"BalsamJob": n})``."""

    @classmethod
    def of(cls, q: JobQuery) -> "_QuerySet":
        return cls(q._client, q._sel, q._preds, q._job_class)

    def _with(self, lookups: Any, negate: bool) -> "_QuerySet":
        return _QuerySet.of(super()._with(lookups, negate))

    def delete(self, force: bool = False) -> Tuple[int, dict]:  # type: ignore[override]
        n = super().delete(force=force)
        return n, {"BalsamJob": n}


class _ObjectsDescriptor:
    def __get__(self, obj: Any, owner: Any) -> _Manager:
        return _Manager()


class BalsamJob(Job):
    """0.x's model class: ``BalsamJob(name=..., ...).save()`` adds a job,
    ``BalsamJob.objects.filter(...)`` selects them."""

    objects = _ObjectsDescriptor()


def _as_job(ref: Any) -> Job:
    return ref if isinstance(ref, Job) else default_client().jobs.get(str(ref), job_class=BalsamJob)


def add_job(
    name: Optional[str] = None, workflow: Optional[str] = None, application: Optional[str] = None,
    description: Optional[str] = None, args: Optional[str] = None, mpi_flags: Optional[str] = None,
    num_nodes: Any = None, ranks_per_node: Any = None, cpu_affinity: Optional[str] = None,
    threads_per_rank: Any = None, threads_per_core: Any = None, environ_vars: Any = None,
    data: Optional[dict] = None, save: bool = True, **kwargs: Any,
) -> BalsamJob:
    """Adds a job from 0.x fields, positionally as 0.5.0's ``add_job(name,
    workflow, application, description, args, ...)`` or by name; a field
    not given takes the server's default. Inside a job its workflow defaults
    to the current job's. With ``save=False`` the job is returned unsaved:
    its ``save()`` adds it."""
    given = dict(
        name=name, workflow=workflow, application=application, description=description, args=args, mpi_flags=mpi_flags,
        num_nodes=num_nodes, ranks_per_node=ranks_per_node, cpu_affinity=cpu_affinity, threads_per_rank=threads_per_rank,
        threads_per_core=threads_per_core, environ_vars=environ_vars, data=data,
    )
    fields = {k: v for k, v in given.items() if v is not None}
    fields.update(kwargs)
    if "workflow" not in fields and current_job is not None:
        fields["workflow"] = current_job.workflow
    if not save:
        return BalsamJob(**fields)
    return _add(fields)


def _add(kwargs: Any, spawned_by: Optional[Job] = None) -> BalsamJob:
    c = default_client()
    return BalsamJob(c.jobs.add(spawned_by=spawned_by, **kwargs).to_dict(), c)


def add_dependency(parent: Any, child: Any) -> None:
    """Makes ``child`` wait for ``parent``; 0.x refused a dependency added twice, and so does this."""
    p, c = _as_job(parent), _as_job(child)
    if p.job_id in (c.parents or []):
        raise Conflict("Dependency already exists; cannot double-add")
    default_client().jobs.add_dependency(p.job_id, c.job_id)


def spawn_child(clone: bool = False, **kwargs: Any) -> BalsamJob:
    """A new job that starts after the current job. With ``clone=True`` it
    copies the current job's fields (and parents) first, as 0.x did. Any
    0.x field is taken; those 0.x's spawn_child set itself (``state``, which
    it made CREATED, ``state_history``, ``lock``, ``queued_launch``) are
    left to the server, which starts the child CREATED with "spawned by
    [name | id8]" as its first history line."""
    if current_job is None:
        raise RuntimeError("No current BalsamJob detected in environment")
    kwargs = spawn_overrides(kwargs)
    if "workflow" not in kwargs:
        kwargs["workflow"] = current_job.workflow
    if clone:
        return _add(clone_spec(current_job, kwargs), spawned_by=current_job)
    kwargs["parents"] = list(kwargs.get("parents") or []) + [current_job.job_id]
    return _add(kwargs, spawned_by=current_job)


def kill(job: Any, recursive: bool = True) -> List[str]:
    """Kills a job and, with ``recursive``, its subtree."""
    return default_client().jobs.kill(_as_job(job).job_id, recursive=recursive)


_env = os.environ
JOB_ID: str = _env.get("BALSAM_JOB_ID", "")
# The launcher tells a handler why it runs through BALSAM_JOB_STATE; 0.x's flags are honoured too.
TIMEOUT: bool = _env.get("BALSAM_JOB_TIMEOUT") == "TRUE" or _env.get("BALSAM_JOB_STATE") == "RUN_TIMEOUT"
ERROR: bool = _env.get("BALSAM_JOB_ERROR") == "TRUE" or _env.get("BALSAM_JOB_STATE") == "RUN_ERROR"

current_job: Optional[BalsamJob] = None
parents: Optional[List[Job]] = None
children: Optional[List[Job]] = None

if JOB_ID:
    try:
        current_job = default_client().current_job(job_class=BalsamJob)  # type: ignore[assignment]
    except BalsamError as e:
        raise RuntimeError(f"The environment specified current job: BALSAM_JOB_ID {JOB_ID}\nbut it could not be read: {e}") from None
    parents = current_job.get_parents()
    children = current_job.get_children()
