"""Errors of the Balsam client: one class per kind of answer from `balsam web`.

Each carries the server's one-line message and nothing of the server's
internals, so ``except balsam.NotFound as e: print(e)`` prints what
``balsam`` on the command line would say.
"""
from __future__ import annotations

from typing import Optional


class BalsamError(Exception):
    """Anything the Balsam client refuses or the server answers with an error."""

    code = "Error"

    def __init__(self, message: str, status: Optional[int] = None, code: Optional[str] = None):
        super().__init__(message)
        self.message = message
        self.status = status
        if code is not None:
            self.code = code


class ConfigError(BalsamError):
    """No server to talk to: no BALSAM_DB_PATH, no web.json, no token."""

    code = "Config"


class Unreachable(BalsamError, ConnectionError):
    """The server named by web.json (or the url given) does not answer."""

    code = "Unreachable"


# ValueError / LookupError / PermissionError bases let 0.x code that caught
# Django's exceptions by their builtin family keep working.
class BadRequest(BalsamError, ValueError):
    code = "BadRequest"


class Unauthorized(BalsamError, PermissionError):
    code = "Unauthorized"


class NotFound(BalsamError, LookupError):
    code = "NotFound"


class Conflict(BalsamError):
    code = "Conflict"


class TooLarge(BalsamError, ValueError):
    code = "TooLarge"


class ServerError(BalsamError):
    code = "Internal"


class WaitTimeout(BalsamError, TimeoutError):
    """wait() gave up before every job was final."""

    code = "Timeout"


BY_CODE = {c.code: c for c in (BadRequest, Unauthorized, NotFound, Conflict, TooLarge, ServerError)}
BY_STATUS = {400: BadRequest, 401: Unauthorized, 403: Unauthorized, 404: NotFound, 409: Conflict, 413: TooLarge}
