"""Where workers live: the multiplexer interface, and what every backend hands out.

A backend is one module beside this one: ``tmux.py`` (orch's own tmux server on this machine) and ``fake.py`` (in
memory, for unit tests of the pass, routing and delivery decisions). Workflow code speaks only this interface:
panes, windows and sessions by id (``$N``, ``@N``, ``%N`` for tmux), orch's tags on each window, text typed through
a paste. A remote host will be one more backend.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from orch.errors import OrchError
from orch.record import dataclass

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Protocol
else:
    Protocol = object  # (the interface is for the type checker; at run time it costs no typing import)

# orch's tags on a window (and its panes): the workspace, task, role, worker id, agent and token hash of its worker,
# and the proof that orch made it (a keyed hash of the others and the window's id; see workflow/context.py)
WINDOW_TAGS = ("workspace", "task", "role", "worker", "agent", "token_hash", "proof")
# on a pane: "shell" for the shell pane `orch exec` adds beside an agent
PANE_TAGS = ("pane_role",)


class MuxError(OrchError):
    """The multiplexer refused or failed a command."""


@dataclass(frozen=True)
class Pane:
    session_id: str
    session_name: str
    window_id: str
    window_name: str
    pane_id: str
    pane_index: int
    pane_pid: int
    dead: bool
    dead_status: int | None
    dead_signal: int | None
    current_command: str
    current_path: str
    active: bool
    server_pid: int
    server_start: str
    task: str
    role: str
    worker: str
    agent: str
    token_hash: str
    pane_role: str
    workspace: str = ""
    proof: str = ""

    @property
    def server(self) -> str:
        return f"{self.server_pid}:{self.server_start}"

    @property
    def is_agent(self) -> bool:
        """The pane of a worker's agent (not the shell pane beside it, not a pane orch did not tag)."""
        return bool(self.worker) and self.pane_role != "shell"


@dataclass(frozen=True)
class Created:
    session_id: str
    window_id: str
    pane_id: str
    pane_pid: int
    server: str  # the server's identity: "<pid>:<start time>"


def exit_code(pane: Pane) -> int | None:
    """A dead pane's exit status, shell style (128 + signal when killed); None while it is not known yet."""
    if pane.dead_status is not None:
        return pane.dead_status
    if pane.dead_signal is not None:
        return 128 + pane.dead_signal
    return None


def describe_exit(pane: Pane) -> str:
    if pane.dead_signal is not None and pane.dead_status is None:
        return f"killed by signal {pane.dead_signal}"
    return f"status {pane.dead_status}" if pane.dead_status is not None else "an unknown status"


class Reading(Protocol):
    """A call to the multiplexer started ahead (``start_listing``, ``start_capture``): read later by the call it
    stands for, or cancelled."""

    def cancel(self) -> None: ...


class Multiplexer(Protocol):
    """What orch needs from the place its workers live. Every method takes ids, never names or indexes."""

    # -- reading
    # calls made so far that may have changed the server: a reading taken before the last of them is stale
    changes: int

    def start_listing(self) -> Reading | None:
        """Begin ``list_panes``'s call now, for a caller with other work meanwhile (None: not begun)."""
        ...

    def start_capture(self, pane_ids: Sequence[str], lines: int = 15) -> Reading | None:
        """Begin ``capture_many``'s call now (see ``start_listing``)."""
        ...

    def list_panes(self, started: Reading | None = None) -> list[Pane]:
        """Every pane of the server (all workspaces'), in one call (``started``: that call, begun ahead); [] when no
        server runs."""
        ...

    def which(self, program: str, path: str) -> str | None:
        """Where ``program`` is, found as a worker started here would find it (``path``: the worker's PATH); None
        when it is not there."""
        ...

    def server_identity(self) -> str:
        """The running server's identity ("<pid>:<start time>"; "" when none runs), as of the last listing: a
        change means the server restarted and its workers went with it."""
        ...

    def session_names(self) -> set[str]: ...

    def capture(self, pane_id: str, lines: int = 50, styled: bool = False) -> str:
        """The last ``lines`` lines of a pane (blank trailing lines dropped); ``styled``: with its colours and
        attributes as terminal escape sequences (for a screen shown elsewhere)."""
        ...

    def capture_many(self, pane_ids: Sequence[str], lines: int = 15, started: Reading | None = None) -> dict[str, str]:
        """The last lines of several panes in one call (``started``: that call, begun ahead for the same panes);
        a pane that is gone is left out."""
        ...

    def clients(self) -> list[tuple[str, str]]:
        """(client, window id) of every person attached."""
        ...

    # -- creating
    def new_session(self, name: str, window_name: str, cwd: str, env: Mapping[str, str],
                    argv: Sequence[str]) -> Created: ...

    def new_window(self, session_id: str, window_name: str, cwd: str, env: Mapping[str, str],
                   argv: Sequence[str]) -> Created: ...

    def split_window(self, window_id: str, cwd: str, env: Mapping[str, str], argv: Sequence[str]) -> Created: ...

    def respawn_pane(self, pane_id: str, cwd: str, env: Mapping[str, str], argv: Sequence[str]) -> None: ...

    def tag_window(self, window_id: str, tags: Mapping[str, str]) -> None:
        """Set orch's tags (WINDOW_TAGS) on a worker's window, which also keeps its pane after the agent exits."""
        ...

    def tag_session(self, session_id: str, tags: Mapping[str, str]) -> None: ...

    def tag_pane(self, pane_id: str, tags: Mapping[str, str]) -> None: ...

    # -- typing
    def paste(self, pane_id: str, data: bytes, bracketed: bool = True, keys: Sequence[str] = ()) -> None:
        """``data`` into the pane's input by a paste (bracketed: the program sees one paste), then ``keys``."""
        ...

    def send_keys(self, pane_id: str, *keys: str) -> None: ...

    def select_pane(self, pane_id: str) -> None:
        """Make the pane the active one of its window, and its window the current one of its session."""
        ...

    # -- ending
    def kill_session(self, session_id: str) -> None: ...

    def kill_window(self, window_id: str) -> None: ...

    def kill_pane(self, pane_id: str) -> None: ...

    def attach(self, window_id: str, wait: bool = False) -> None:
        """Show the window on this terminal (replaces the process where the backend allows; with ``wait``, returns
        once the person leaves it)."""
        ...

    def describe(self) -> str:
        """How a person reaches this server themselves (``tmux -L orch``), for messages."""
        ...
