"""The agent protocol: what orch needs to know about an agent program, with the behaviour of a generic
command-line agent as the default. Each agent orch knows is one module beside this one overriding what differs.

- ``profiles()``: its built-in profiles (the program, prompt delivery, timings, screen patterns);
- ``launch()``: the arguments and environment for a role, the worker's agent session, and first-start setup (the
  dialogs the program would ask about, answered in its own settings);
- ``can_resume``: whether ``launch(resume=<session>)`` continues an earlier session;
- ``hook_state()``, ``hook_session()``, ``side_thread()``: what its hook events say about the worker;
- ``final_message()``: its last message at the end of a turn, from the hook payload (verdict blocks of reviewers
  that cannot run commands);
- ``reports_in_transcript`` and ``transcript_turn()``: for an agent that cannot run `orch -`, where its report or
  verdict is read at the end of a turn;
- ``sandbox_write()``: the agent's own state it must write inside the sandbox (orch/sandbox.py).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping

from orch.agents import hooks
from orch.agents.profile import AgentProfile
from orch.files import atomic_write
from orch.locks import hold
from orch.record import dataclass, field

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import ClassVar


@dataclass
class Launch:
    """What ``launch()`` adds to the profile's command: arguments, environment, and the agent's own session id."""

    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    session: str = ""


@dataclass(frozen=True)
class LaunchRequest:
    profile: AgentProfile
    role: str  # coder | reviewer
    state_dir: str  # the workspace's .orch
    orch_bin: str  # the absolute path of the workers' `orch`
    worktree: str
    git_dirs: list[str]  # the repository's common git dir, and the worktree's own when it differs
    env: Mapping[str, str]  # the environment the agent will see (HOME, API keys)
    worker_id: str = ""
    resume: str = ""  # the agent session of a lost worker to continue
    spool: str = ""  # in the sandbox: the worker's own spool, its one way to orch (else orch's state folder)

    @property
    def home(self) -> str:
        return self.env.get("HOME") or os.environ.get("HOME") or os.path.expanduser("~")


@dataclass(frozen=True)
class TranscriptTurn:
    final: str  # the agent's last message of the turn
    read_to: int  # how far the transcript has now been read


class Agent:
    """A generic command-line agent: started as configured, no hooks of its own unless the profile says so, state
    from the screen patterns of its profile."""

    kind: ClassVar[str] = "generic"
    install: ClassVar[str] = ""  # how to install its program, for the one line that says it is missing
    own_files: ClassVar[tuple[str, ...]] = ()  # its caches in the worktree (git-ignored), e.g. ".aider*"
    can_resume: ClassVar[bool] = False
    reports_in_transcript: ClassVar[bool] = False

    def profiles(self) -> dict[str, AgentProfile]:
        return {}

    def launch(self, req: LaunchRequest) -> Launch:
        return Launch()

    def hook_state(self, event: str, payload: dict) -> str | None:
        """The worker state a hook event means, or None when it says nothing about the worker itself."""
        return hooks.state_for(event)

    def hook_session(self, payload: dict) -> str | None:
        return hooks.session_of(payload)

    def side_thread(self, event: str, payload: dict) -> bool:
        """An event about something else than the worker's own turn (ignored)."""
        return False

    def final_message(self, payload: dict) -> str:
        return hooks.final_message(payload)

    def transcript_turn(self, session: str, offset: int) -> TranscriptTurn | None:
        return None

    def sandbox_write(self, req: LaunchRequest) -> list[str]:
        """What the agent itself must write inside the sandbox besides the worktree: its own state (absolute)."""
        return []

    def first_start(self, screen: str) -> str | None:
        """When ``screen`` shows the agent's first-start setup (a dialog orch cannot answer), what to tell the person,
        in words; else None."""
        return None


def sh_quote(text: str) -> str:
    """For the agents that run a hook command through a shell: quote orch's own path (never task or agent text)."""
    return "'" + text.replace("'", "'\"'\"'") + "'"


def edit_json(path: str, change: Callable[[dict], bool]) -> None:
    """An atomic, locked edit of an agent's JSON settings file (only the keys ``change`` touches)."""
    with hold(path + ".orch-lock", wait=10):
        try:
            with open(path, encoding="utf-8") as fh:
                data = json.load(fh)
        except FileNotFoundError:
            data = {}
        except ValueError:
            return  # not ours to repair: leave a file we cannot read alone
        if not isinstance(data, dict):
            return
        if change(data):
            mode = os.stat(path).st_mode & 0o777 if os.path.exists(path) else 0o600
            atomic_write(path, (json.dumps(data, indent=2) + "\n").encode(), mode=mode)
