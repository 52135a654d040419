"""The wire: finding `balsam web`, one JSON request, one server-sent-events stream.

Standard library only (urllib), so the client installs on any Python >= 3.9
of an HPC login or compute node without a package index.
"""
from __future__ import annotations

import json
import math
import os
import socket
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

from .errors import BY_CODE, BY_STATUS, BadRequest, BalsamError, ConfigError, ServerError, Unreachable

Query = Sequence[Tuple[str, str]]


def discover(url: Optional[str] = None, token: Optional[str] = None, db_path: Optional[str] = None) -> Tuple[str, str]:
    """The server's address and token: explicit arguments first, then
    BALSAM_WEB_URL / BALSAM_WEB_TOKEN, then the `web.json` that `balsam web`
    writes into the database directory (`db_path` or BALSAM_DB_PATH)."""
    url = url or os.environ.get("BALSAM_WEB_URL") or None
    token = token or os.environ.get("BALSAM_WEB_TOKEN") or None
    if url and token:
        return url.rstrip("/"), token
    db = db_path or os.environ.get("BALSAM_DB_PATH")
    if not db:
        raise ConfigError("no Balsam database: set BALSAM_DB_PATH, or pass Balsam(url=..., token=...)")
    web = os.path.join(db, "web.json")
    try:
        with open(web, encoding="utf-8") as f:
            info = json.load(f)
    except FileNotFoundError:
        info = {}
        if not url:
            raise ConfigError(f"{web} not found: start `balsam web` for this database (BALSAM_DB_PATH={db})") from None
    except (OSError, ValueError) as e:
        raise ConfigError(f"cannot read {web}: {e}") from None
    url = url or info.get("url")
    token = token or info.get("token")
    if not token:
        # A restarted `balsam web` keeps its token here; web.json may be gone while it is down.
        try:
            with open(os.path.join(db, "web-token"), encoding="utf-8") as f:
                token = f.read().strip()
        except OSError:
            pass
    if not url or not token:
        raise ConfigError(f"{web} names no {'url' if not url else 'token'}: restart `balsam web` for this database")
    return str(url).rstrip("/"), str(token)


def _error_from(status: int, body: bytes) -> BalsamError:
    """The server's `{"error": {"code", "message"}}` as the matching exception; its one line, nothing else."""
    code = None
    message = None
    try:
        err = json.loads(body.decode("utf-8")).get("error", {})
        code = err.get("code")
        message = err.get("message")
    except (ValueError, AttributeError, UnicodeDecodeError):
        pass
    if not message:
        text = body.decode("utf-8", "replace").strip().splitlines()
        message = f"HTTP {status}" + (f": {text[0][:200]}" if text else "")
    cls = BY_CODE.get(code or "") or BY_STATUS.get(status) or (ServerError if status >= 500 else BalsamError)
    return cls(message, status=status, code=code)


def _check_finite(value: Any, path: str = "", depth: int = 0) -> None:
    """Refuses a NaN or an infinity anywhere in a request's body, naming where
    it is (a body's ``set.`` prefix left out). Python's json writes them as
    ``NaN``/``Infinity``, which are not JSON: the server could only answer
    that the body does not parse. No job can hold one (the embedded database
    refuses them), so it is said here, before anything is sent."""
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            what = "NaN" if math.isnan(value) else ("inf" if value > 0 else "-inf")
            raise BadRequest(f'{path or "the value"} is {what}, which a job cannot hold; use None or the string "{what}"')
        return
    if depth > 200:
        return
    if isinstance(value, dict):
        for k, v in value.items():
            _check_finite(v, f"{path}.{k}" if path else ("" if k == "set" and depth == 0 else str(k)), depth + 1)
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_finite(v, f"{path}[{i}]", depth + 1)


class Transport:
    """One server, one token. Every call is one HTTP request (no retries: a
    POST retried after a lost answer could add a job twice)."""

    def __init__(self, url: str, token: str, timeout: float = 60.0):
        self.url = url
        self.token = token
        self.timeout = timeout

    def _open(self, method: str, path: str, query: Optional[Query], body: Any, timeout: float, accept: str):
        full = self.url + path
        if query:
            full += "?" + urllib.parse.urlencode(list(query))
        data = None
        headers = {"Authorization": f"Bearer {self.token}", "Accept": accept}
        # A job's own pre/postprocess script counts as its launcher (DESIGN.md
        # invariant 3): the launcher hands it the lease it holds, and writes
        # carrying it are the launcher's own.
        lease = os.environ.get("BALSAM_JOB_LEASE")
        if lease:
            headers["X-Balsam-Lease"] = lease
        if body is not None:
            _check_finite(body)
            data = json.dumps(body, allow_nan=False).encode("utf-8")
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(full, data=data, method=method, headers=headers)
        try:
            return urllib.request.urlopen(req, timeout=timeout)
        except urllib.error.HTTPError as e:
            with e:
                raise _error_from(e.code, e.read()) from None
        except urllib.error.URLError as e:
            raise Unreachable(f"cannot reach balsam web at {self.url}: {e.reason} (is `balsam web` running?)") from None
        except (socket.timeout, TimeoutError):
            raise Unreachable(f"balsam web at {self.url} did not answer {method} {path} within {timeout:g} s") from None
        except ConnectionError as e:
            raise Unreachable(f"cannot reach balsam web at {self.url}: {e}") from None

    def request(self, method: str, path: str, query: Optional[Query] = None, body: Any = None, timeout: Optional[float] = None) -> Any:
        t = self.timeout if timeout is None else timeout
        with self._open(method, path, query, body, t, "application/json") as resp:
            try:
                raw = resp.read()
            except (socket.timeout, TimeoutError):
                raise Unreachable(f"balsam web at {self.url} did not finish answering {method} {path} within {t:g} s") from None
        if not raw:
            return None
        try:
            return json.loads(raw.decode("utf-8"))
        except ValueError:
            raise ServerError(f"balsam web answered {method} {path} with something that is not JSON") from None

    def events(self, method: str, path: str, body: Any, timeout: float) -> Iterator[Tuple[str, str]]:
        """A text/event-stream as (event, data) pairs, each as soon as its
        blank line arrives: the response is read line by line, never buffered
        whole. Closing the generator closes the connection."""
        resp = self._open(method, path, None, body, timeout, "text/event-stream")
        try:
            event, data = "message", []  # type: str, List[str]
            while True:
                try:
                    raw = resp.readline()
                except (socket.timeout, TimeoutError):
                    raise Unreachable(f"balsam web at {self.url} sent nothing on {path} for {timeout:g} s") from None
                if not raw:
                    return
                line = raw.decode("utf-8").rstrip("\r\n")
                if line == "":
                    if data:
                        yield event, "\n".join(data)
                    event, data = "message", []
                elif line.startswith(":"):
                    continue  # a comment: the server's keep-alive
                else:
                    name, _, value = line.partition(":")
                    if value.startswith(" "):
                        value = value[1:]
                    if name == "event":
                        event = value
                    elif name == "data":
                        data.append(value)
        finally:
            resp.close()


def quote_id(id_: str) -> str:
    """A job id (or prefix) as one path segment."""
    return urllib.parse.quote(id_, safe="")


def as_query(selectors: Dict[str, Union[str, List[str]]]) -> List[Tuple[str, str]]:
    out: List[Tuple[str, str]] = []
    for k, v in selectors.items():
        if isinstance(v, list):
            out.extend((k, x) for x in v)
        else:
            out.append((k, v))
    return out
