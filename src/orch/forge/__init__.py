"""The forge: where pull requests live. Plain records of a PR (its checks, review threads, reviews, comments) and the
small interface a forge backend offers (``Forge``); GitHub through `gh` is the one backend (``forge/github.py``).
Pure: no process is run here.
"""

from __future__ import annotations

from orch.record import dataclass, field, fields

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Protocol
else:
    Protocol = object  # (typing costs milliseconds at start-up; the checker alone needs the protocol)

FAILING = frozenset({"failure", "timed_out", "cancelled", "action_required", "startup_failure", "error", "stale"})
PASSING = frozenset({"success", "neutral", "skipped"})


@dataclass
class Check:
    """A check run (or a commit status) on one sha."""

    name: str
    sha: str
    status: str = "completed"  # queued | in_progress | completed (a commit status: pending | completed)
    conclusion: str = ""  # success | failure | ... ("" while it runs)
    url: str = ""
    job_id: int = 0  # a GitHub Actions job (its log can be read); 0 for another CI's status

    @property
    def done(self) -> bool:
        return self.status == "completed"

    @property
    def failed(self) -> bool:
        return self.done and self.conclusion in FAILING

    @property
    def green(self) -> bool:
        return self.done and self.conclusion in PASSING

    @property
    def word(self) -> str:
        return self.conclusion if self.done else self.status


@dataclass
class Comment:
    id: str
    author: str
    bot: bool
    body: str
    url: str = ""
    at: str = ""  # ISO time


@dataclass
class Thread:
    """A review thread on a line of the diff."""

    id: str
    path: str
    line: int | None
    resolved: bool
    outdated: bool
    comments: list[Comment] = field(default_factory=list)

    @property
    def open(self) -> bool:
        return not self.resolved and not self.outdated

    @property
    def last(self) -> str:
        """The thread as it stands: its last comment's id (a thread said again only when someone adds to it)."""
        return self.comments[-1].id if self.comments else ""


@dataclass
class PullReview:
    id: str
    author: str
    bot: bool
    state: str  # APPROVED | CHANGES_REQUESTED | COMMENTED | DISMISSED | PENDING
    sha: str
    body: str = ""
    url: str = ""
    at: str = ""


@dataclass
class Pull:
    number: int
    url: str
    state: str  # OPEN | CLOSED | MERGED
    head_ref: str
    head_sha: str
    base_ref: str = ""
    draft: bool = False
    mergeable: str = ""  # MERGEABLE | CONFLICTING | UNKNOWN
    merge_state: str = ""  # CLEAN | BLOCKED | BEHIND | DIRTY | UNSTABLE | HAS_HOOKS | UNKNOWN | DRAFT
    review_decision: str = ""  # APPROVED | CHANGES_REQUESTED | REVIEW_REQUIRED | ""
    checks: list[Check] = field(default_factory=list)
    threads: list[Thread] = field(default_factory=list)
    reviews: list[PullReview] = field(default_factory=list)
    comments: list[Comment] = field(default_factory=list)
    node_id: str = ""  # GitHub's id of the PR (for its mutations)
    auto_merge: bool = False  # the forge merges it once its requirements are met

    def change_requests(self) -> list[PullReview]:
        """Humans whose latest say on the PR is "changes requested" (a later approval or dismissal clears it)."""
        latest: dict[str, PullReview] = {}
        for r in self.reviews:
            if r.state in ("APPROVED", "CHANGES_REQUESTED", "DISMISSED") and not r.bot:
                latest[r.author] = r
        return [r for r in latest.values() if r.state == "CHANGES_REQUESTED"]

    def approvals(self) -> list[PullReview]:
        return [r for r in self.reviews if r.state == "APPROVED"]


@dataclass
class Want:
    """A task's PR to look for: by its number when known, else by the task's branch."""

    task: str
    number: int = 0
    branch: str = ""


@dataclass
class Budget:
    """The forge's rate limit as last seen."""

    remaining: int = -1
    limit: int = -1
    reset_at: float = 0.0

    def words(self) -> str:
        if self.remaining < 0:
            return "unknown"
        return f"{self.remaining}/{self.limit} requests left (resets at {_clock(self.reset_at)})"


def _clock(at: float) -> str:
    import time

    return time.strftime("%H:%M:%S", time.localtime(at)) if at else "?"


@dataclass
class Opened:
    number: int
    url: str


class Forge(Protocol):
    """What orch asks of a forge."""

    repo: str  # "owner/name" (with its host, when not the default)

    def pulls(self, wants: list[Want]) -> tuple[dict[str, Pull | None], Budget]:
        """Every wanted task's PR (None: the task has none), in one request."""
        ...

    def job_log(self, check: Check) -> str:
        """The log of a check's job (empty when the forge keeps none)."""
        ...

    def open_pull(self, branch: str, base: str, title: str, body: str, draft: bool) -> Opened:
        ...

    def auto_merge(self, pull: Pull, method: str) -> None:
        """Ask the forge to merge the PR once its requirements are met (``method``: merge | squash | rebase)."""
        ...


def number_of(url: str) -> int:
    """A PR's number from its URL (``https://github.com/o/n/pull/12``), 0 when it is not one."""
    parts = url.rstrip("/").split("/")
    if len(parts) >= 2 and parts[-2] == "pull" and parts[-1].isdigit():
        return int(parts[-1])
    return 0


def repo_of(url: str) -> str:
    """``host/owner/name`` from a PR's or a repository's URL (https or ssh form), "" when not one."""
    text = url.strip()
    if text.startswith("git@"):
        host, _, path = text[4:].partition(":")
    elif "://" in text:
        rest = text.split("://", 1)[1]
        host, _, path = rest.partition("/")
        host = host.rsplit("@", 1)[-1]
    else:
        return ""
    parts = [p for p in path.split("/") if p]
    if len(parts) < 2 or not host:
        return ""
    name = parts[1][:-4] if parts[1].endswith(".git") else parts[1]
    return f"{host}/{parts[0]}/{name}"


def as_dict(pull: Pull) -> dict:
    """A PR as plain data (kept in the store, shown by `orch check --json`)."""

    def plain(value: object) -> object:
        if isinstance(value, list):
            return [plain(v) for v in value]
        if hasattr(value, "__record_fields__") or hasattr(value, "__dataclass_fields__"):
            return {f.name: plain(getattr(value, f.name)) for f in fields(value)}  # type: ignore[arg-type]
        return value

    found = plain(pull)
    assert isinstance(found, dict)
    return found


def pull_from(data: dict) -> Pull:
    """The PR kept by ``as_dict``."""
    d = dict(data)
    d["checks"] = [Check(**c) for c in d.get("checks", [])]
    d["threads"] = [Thread(**{**t, "comments": [Comment(**c) for c in t.get("comments", [])]})
                    for t in d.get("threads", [])]
    d["reviews"] = [PullReview(**r) for r in d.get("reviews", [])]
    d["comments"] = [Comment(**c) for c in d.get("comments", [])]
    return Pull(**d)
