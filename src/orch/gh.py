"""The only code that runs GitHub's `gh` program: an API call as an argument list, its HTTP answer read whole.

orch asks GitHub through `gh api` (GraphQL for the batched query of every task's pull request, REST for a job's
log and for opening a pull request): `gh` holds the person's login (`gh auth login`, or ``GH_TOKEN`` /
``GH_ENTERPRISE_TOKEN``) and knows GitHub Enterprise hosts. ``--include`` gives the status line and headers, so
that a rate limit (403 or 429 with ``x-ratelimit-reset`` or ``retry-after``) is seen and waited out. Request
bodies go on stdin as JSON: nothing a task, forge or person wrote is ever part of an argument that `gh` parses as
a flag, and no shell is involved.
"""

from __future__ import annotations

import json
import os

from orch import child
from orch.errors import OrchError
from orch.record import dataclass, field

MISSING = "the `gh` program is not installed: install GitHub's CLI (e.g. `apt-get install gh`), then `gh auth login`"


class GhError(OrchError):
    """`gh` failed without an HTTP answer (not installed, not logged in, no network), or GitHub refused."""


class RateLimited(GhError):
    """GitHub's rate limit: nothing more is asked before ``until`` (seconds since the epoch)."""

    def __init__(self, message: str, until: float) -> None:
        super().__init__(message)
        self.until = until


@dataclass
class Answer:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    def json(self) -> object:
        try:
            return json.loads(self.body or b"null")
        except ValueError:
            raise GhError(f"GitHub answered {self.status} with a body that is not JSON: "
                          f"{self.body[:120].decode('utf-8', 'replace')!r}") from None

    def message(self) -> str:
        try:
            found = json.loads(self.body)
        except ValueError:
            return self.body[:200].decode("utf-8", "replace").strip()
        return str(found.get("message", "")) if isinstance(found, dict) else ""


def env(host: str = "") -> dict[str, str]:
    """`gh`'s environment: never a prompt, a pager, colours or an update check; ``host`` for a GitHub Enterprise
    host (or a test's scripted forge)."""
    extra = {"GH_PROMPT_DISABLED": "1", "GH_NO_UPDATE_NOTIFIER": "1", "NO_COLOR": "1", "GH_PAGER": "cat",
             "CLICOLOR": "0"}
    if host and host != "github.com":
        extra["GH_HOST"] = host
    return {**os.environ, **extra}


def api(path: str, host: str = "", method: str = "GET", body: object = None, accept: str = "") -> Answer:
    """One call of GitHub's API (``path`` like ``graphql`` or ``repos/o/n/pulls``); ``body`` sent as JSON."""
    argv = ["gh", "api", "--include", "--method", method, path]
    if accept:
        argv += ["--header", f"Accept: {accept}"]
    data = None
    if body is not None:
        argv += ["--input", "-"]
        data = json.dumps(body).encode()
    try:
        proc = child.run(argv, input=data, env=env(host))
    except FileNotFoundError:
        raise GhError(MISSING) from None
    answer = parse(proc.stdout)
    if answer is None:
        err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        why = err[-1] if err else f"exit {proc.returncode}"
        if "auth login" in why or "not logged" in why or "authentication" in why.lower():
            why += " (log in with `gh auth login`, or set GH_TOKEN)"
        raise GhError(f"gh api {path}: {why}")
    limited = rate_limited(answer)
    if limited is not None:
        raise RateLimited(f"GitHub's rate limit: {answer.message() or answer.status}", limited)
    return answer


def parse(out: bytes) -> Answer | None:
    """`gh api --include`'s output: the status line, the headers, a blank line, the body (None: no answer)."""
    if not out.startswith(b"HTTP/"):
        return None
    head, sep, body = out.partition(b"\r\n\r\n")
    if not sep:
        head, _, body = out.partition(b"\n\n")
    lines = head.decode("latin-1").splitlines()
    try:
        status = int(lines[0].split()[1])
    except (IndexError, ValueError):
        return None
    headers = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if colon:
            headers[name.strip().lower()] = value.strip()
    return Answer(status, headers, body)


def rate_limited(answer: Answer, now: float | None = None) -> float | None:
    """When a refused answer is GitHub's rate limit, the time from which asking again is allowed."""
    if answer.status not in (403, 429):
        return None
    import time

    now = time.time() if now is None else now
    h = answer.headers
    if "retry-after" in h:
        try:
            return now + max(float(h["retry-after"]), 1.0)
        except ValueError:
            pass
    if h.get("x-ratelimit-remaining") == "0" and "x-ratelimit-reset" in h:
        try:
            return max(float(h["x-ratelimit-reset"]), now + 1.0)
        except ValueError:
            pass
    if "rate limit" in answer.message().lower():  # a secondary limit without a time: a minute, as GitHub advises
        return now + 60.0
    return None


def budget(answer: Answer) -> tuple[int, int, float] | None:
    """(remaining, limit, reset time) of the rate limit the answer's headers carry."""
    h = answer.headers
    try:
        return int(h["x-ratelimit-remaining"]), int(h["x-ratelimit-limit"]), float(h["x-ratelimit-reset"])
    except (KeyError, ValueError):
        return None
