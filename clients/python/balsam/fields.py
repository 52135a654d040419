"""Balsam 0.x's snake_case job fields and the API's camelCase names.

The table mirrors libs/models/fields.ts (JOB_FIELDS); 0.x spellings that the
TypeScript side does not use (``application_args``, ``job_id``/``pk``) are
aliases here so 0.x scripts run unchanged.
"""
from __future__ import annotations

import re
from typing import Any, Dict, Iterable, Mapping, Optional

SNAKE_TO_KEY: Dict[str, str] = {
    "job_id": "_id",
    "name": "name",
    "workflow": "workflow",
    "application": "application",
    "args": "args",
    "description": "description",
    "state": "state",
    "state_history": "stateHistory",
    "parents": "parents",
    "has_children": "hasChildren",
    "data": "data",
    "num_nodes": "numNodes",
    "ranks_per_node": "ranksPerNode",
    "threads_per_rank": "threadsPerRank",
    "threads_per_core": "threadsPerCore",
    "cpu_affinity": "cpuAffinity",
    "node_packing_count": "nodePackingCount",
    "gpus_per_rank": "gpusPerRank",
    "coschedule_num_nodes": "coscheduleNumNodes",
    "wall_time_minutes": "wallTimeMinutes",
    "mpi_flags": "mpiFlags",
    "environ_vars": "environVars",
    "tags": "tags",
    "input_files": "inputFiles",
    "stage_in_url": "stageInUrl",
    "stage_out_files": "stageOutFiles",
    "stage_out_url": "stageOutUrl",
    "post_error_handler": "postErrorHandler",
    "post_timeout_handler": "postTimeoutHandler",
    "auto_timeout_retry": "autoTimeoutRetry",
    "fast_fail_retries": "fastFailRetries",
    "wait_for_parents": "waitForParents",
    "preprocess": "preprocess",
    "postprocess": "postprocess",
    "working_directory": "workingDirectory",
    "workdir": "workdir",
    "lock": "lock",
    "attempts": "attempts",
    "exit_code": "exitCode",
    "runtime_seconds": "runtimeSeconds",
    "queued_launch": "queuedLaunch",
    "created_at": "createdAt",
    "updated_at": "updatedAt",
}
ALIASES: Dict[str, str] = {
    "application_args": "args",
    "pk": "_id",
    "id": "_id",
}
KEY_TO_SNAKE: Dict[str, str] = {v: k for k, v in SNAKE_TO_KEY.items()}

#: What a job spec may set (jobs.add, spawn_child); the rest is the server's.
SETTABLE = frozenset(
    [
        "name", "workflow", "application", "args", "description", "parents", "data", "numNodes", "ranksPerNode",
        "threadsPerRank", "threadsPerCore", "cpuAffinity", "nodePackingCount", "gpusPerRank", "coscheduleNumNodes",
        "wallTimeMinutes", "mpiFlags", "environVars", "tags", "inputFiles", "stageInUrl", "stageOutFiles", "stageOutUrl",
        "postErrorHandler", "postTimeoutHandler", "autoTimeoutRetry", "fastFailRetries", "waitForParents", "preprocess",
        "postprocess",
    ]
)
#: What save()/update() may change in place (as `balsam modify`); workflow and parents have their own paths.
EDITABLE = SETTABLE - {"workflow", "parents"}
DATES = frozenset(["createdAt", "updatedAt"])

JOB_STATES = (
    "CREATED", "AWAITING_PARENTS", "READY", "STAGED_IN", "PREPROCESSED", "RUNNING", "RUN_DONE", "POSTPROCESSED",
    "JOB_FINISHED", "RUN_TIMEOUT", "RUN_ERROR", "RESTART_READY", "FAILED", "USER_KILLED",
)
FINAL_STATES = ("JOB_FINISHED", "FAILED", "USER_KILLED")
RUNNABLE_STATES = ("READY", "RESTART_READY")


def key_of(name: str) -> Optional[str]:
    """The API's name of a field given in 0.x snake_case, an alias, or already camelCase; None if unknown."""
    if name in SNAKE_TO_KEY:
        return SNAKE_TO_KEY[name]
    if name in ALIASES:
        return ALIASES[name]
    if name in KEY_TO_SNAKE:
        return name
    return None


_ENV_SPLIT = re.compile(r"[,:](?=[A-Za-z_][A-Za-z0-9_]*=)")


def env_dict(value: Any) -> Any:
    """0.x stored environ_vars as ``"A=1:B=2"``; the API takes a dict. Same
    splitting rule as the CLI's ``--env``: a ``:`` or ``,`` starts a new
    entry only when ``VAR=`` follows, so ``PATH=/a:/b`` stays one."""
    if not isinstance(value, str):
        return value
    out: Dict[str, str] = {}
    for item in _ENV_SPLIT.split(value) if value else []:
        name, eq, val = item.partition("=")
        if not eq or not name:
            # Left for the server to refuse with its own message.
            return value
        out[name] = val
    return out


#: Fields 0.x kept as Django IntegerField, FloatField-like and BooleanField: a value of another type is converted as Django did.
INTEGERS = frozenset(["numNodes", "ranksPerNode", "threadsPerRank", "threadsPerCore", "nodePackingCount", "gpusPerRank", "coscheduleNumNodes", "fastFailRetries"])
NUMBERS = frozenset(["wallTimeMinutes"])
BOOLEANS = frozenset(["postErrorHandler", "postTimeoutHandler", "autoTimeoutRetry", "waitForParents"])
TEXTS = frozenset(["name", "workflow", "application", "args", "description", "mpiFlags", "inputFiles", "stageInUrl", "stageOutFiles", "stageOutUrl", "preprocess", "postprocess"])


def coerce(key: str, name: str, value: Any) -> Any:
    """``value`` as the type field ``key`` holds, converted as 0.x's Django
    fields converted it on save: ``"2"`` (from ``sys.argv``) for a count is
    2, ``"True"``/``"f"``/``1`` for a flag is a bool, a number for text is
    its text. BadRequest, naming the field, when it cannot be."""
    from .errors import BadRequest

    if value is None:
        return value
    if key in INTEGERS:
        # int() as Django's IntegerField, but a fraction is refused rather than cut off.
        if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        raise BadRequest(f"{name} must be a whole number, not {value!r}")
    if key in NUMBERS:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise BadRequest(f"{name} must be a number, not {value!r}")
        try:
            f = float(value)
        except ValueError:
            raise BadRequest(f"{name} must be a number, not {value!r}") from None
        return int(f) if f.is_integer() else f
    if key in BOOLEANS:
        # Django's BooleanField.to_python, exactly.
        if value in (True, False):
            return bool(value)
        if value in ("t", "True", "1"):
            return True
        if value in ("f", "False", "0"):
            return False
        raise BadRequest(f"{name} must be True or False, not {value!r}")
    if key in TEXTS and isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return value


def to_spec(fields: Mapping[str, Any], allowed: Iterable[str] = SETTABLE, what: str = "job field") -> Dict[str, Any]:
    """A dict of 0.x/snake_case (or camelCase) fields as the API's body,
    each value of the field's type (see coerce). Unknown names raise
    BadRequest before anything is sent."""
    from .errors import BadRequest

    allowed = frozenset(allowed)
    spec: Dict[str, Any] = {}
    for name, value in fields.items():
        key = key_of(name)
        if key is None:
            raise BadRequest(f"unknown {what} '{name}'")
        if key not in allowed:
            raise BadRequest(f"{what} '{name}' cannot be set here")
        if key == "environVars":
            value = env_dict(value)
        elif key == "parents":
            value = [getattr(p, "job_id", p) for p in value]
        spec[key] = coerce(key, name, value)
    return spec
