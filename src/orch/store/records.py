"""The rows the store hands out, as plain dataclasses."""

from __future__ import annotations

from orch.record import dataclass, fields


@dataclass
class Worker:
    id: str
    task: str
    role: str
    agent: str
    state: str
    state_since: float
    created_at: float
    session_name: str = ""
    session_id: str = ""
    window_id: str = ""
    pane_id: str = ""
    pane_pid: int = 0
    worktree: str = ""
    branch: str = ""
    token_hash: str = ""
    exit_status: int | None = None
    prompt_file: str = ""
    ended_at: float | None = None
    agent_session: str = ""
    hook_at: float | None = None
    screen_state: str = ""
    screen_count: int = 0
    prompted_at: float | None = None
    reminded_at: float | None = None
    note: str = ""
    transcript_offset: int = 0
    tmux_server: str = ""
    workspace: str = ""
    sandbox: str = ""

    @property
    def address(self) -> str:
        return self.task if self.role == "coder" else f"{self.task}:{self.role}"


WORKER_COLUMNS = tuple(f.name for f in fields(Worker))


@dataclass
class Message:
    id: int
    uid: str
    at: float
    kind: str
    task: str
    worker: str
    role: str
    token_hash: str
    text: str
    status: str
    note: str
    applied_at: float | None


@dataclass
class Outgoing:
    id: int
    worker: str
    task: str
    text: str
    why: str
    created_at: float
    delivered_at: float | None


@dataclass
class Validation:
    id: int
    task: str
    round: int
    sha: str
    command: str
    source: str
    exit_code: int
    duration: float
    timed_out: int
    tail: str
    log_path: str
    at: float

    @property
    def passed(self) -> bool:
        return self.exit_code == 0 and not self.timed_out


@dataclass
class Review:
    id: int
    task: str
    round: int
    sha: str
    base: str
    base_sha: str
    reviewer: str
    tree_before: str
    tree_after: str
    decision: str
    findings: list
    status: str
    note: str
    requested_at: float
    answered_at: float | None
    acted_at: float | None


@dataclass
class TaskRow:
    """orch's record of one open task: what its block in the task file says."""

    slug: str
    state: str
    fields: dict  # summary fields in order, without the state: {"round": "2", "question": "..."}
    meta: dict  # session, worktree, branch
    rev: int = 0
    updated_at: float = 0.0


@dataclass
class LogLine:
    id: int
    slug: str
    at: float
    text: str
    uid: str | None = None


@dataclass
class Event:
    id: int
    at: float
    task: str
    worker: str
    kind: str
    text: str
    data: dict
