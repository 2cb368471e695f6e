"""An in-memory multiplexer: the backend of unit tests of the pass, routing and delivery decisions.

It keeps sessions, windows and panes with ids like tmux's, orch's tags, each pane's screen and what was typed into
it, the attached clients, and the server's identity (a new one after ``kill_server``). A pane runs a small
in-memory program: ``FakeAgent`` by default, which shows a prompt, takes pasted text on Enter and shows it is
working; tests change screens, end programs and attach clients directly. Every call is recorded in ``calls``.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Mapping, Sequence

from orch.mux import Created, MuxError, Pane
from orch.record import dataclass, field


class FakeAgent:
    """A pane's program: shows ``prompt`` when ready; pasted text followed by Enter is taken: it is added to
    ``received`` and the screen shows ``working: <first line>`` until the test shows the prompt again."""

    prompt = "> "
    takes_text = True
    starts = True  # False: the multiplexer fails to create its pane (MuxError)

    def __init__(self, pane: FakePane) -> None:
        self.pane = pane
        self.received: list[str] = []
        self.pending = ""

    def start(self) -> None:
        self.pane.show(self.prompt)

    def paste(self, text: str) -> None:
        self.pending += text

    def keys(self, keys: Sequence[str]) -> None:
        for key in keys:
            if key in ("Enter", "C-m") and self.pending and self.takes_text:
                self.received.append(self.pending)
                first = self.pending.splitlines()[0] if self.pending.strip() else ""
                self.pending = ""
                self.pane.show(f"working: {first}")


class DeafAgent(FakeAgent):
    """Shows it is ready but never takes typed text (a delivery that fails)."""

    takes_text = False


class BrokenAgent(FakeAgent):
    """A program whose pane cannot be created."""

    starts = False


@dataclass
class FakePane:
    id: str
    window_id: str
    index: int
    pid: int
    cwd: str
    env: dict[str, str]
    argv: list[str]
    screen: list[str] = field(default_factory=list)
    dead: bool = False
    dead_status: int | None = None
    tags: dict[str, str] = field(default_factory=dict)
    program: FakeAgent | None = None

    def show(self, text: str) -> None:
        """Add lines to the screen (what the program prints)."""
        self.screen += text.split("\n")

    def exit(self, status: int) -> None:
        self.dead, self.dead_status = True, status


@dataclass
class FakeWindow:
    id: str
    session_id: str
    name: str
    panes: list[str] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)


@dataclass
class FakeSession:
    id: str
    name: str
    windows: list[str] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)


class FakeMux:
    """One in-memory server."""

    def __init__(self, program: type[FakeAgent] = FakeAgent, programs: Mapping[str, type[FakeAgent]] | None = None) -> None:
        self.program = program
        # the program a pane runs, by the name of its command (argv[0]); others run ``program``
        self.programs: dict[str, type[FakeAgent]] = {"deaf-agent": DeafAgent, "broken-agent": BrokenAgent, **(programs or {})}
        self.missing: set[str] = {"missing-agent"}  # programs not installed: `which` finds nothing
        self.sessions: dict[str, FakeSession] = {}
        self.windows: dict[str, FakeWindow] = {}
        self.panes: dict[str, FakePane] = {}
        self.attached: list[tuple[str, str]] = []  # (client, window id)
        self.calls: list[tuple[str, ...]] = []
        self.server_pid = 0
        self._ids = itertools.count(1)
        self._pids = itertools.count(1000)
        self._servers = itertools.count(1)

    # -- helpers for tests ------------------------------------------------------------------------------------

    def pane(self, pane_id: str) -> FakePane:
        return self.panes[pane_id]

    def agent(self, pane_id: str) -> FakeAgent:
        program = self.panes[pane_id].program
        assert program is not None
        return program

    def kill_server(self) -> None:
        self.calls.append(("kill-server",))
        self.sessions.clear()
        self.windows.clear()
        self.panes.clear()
        self.attached.clear()
        self.server_pid = 0

    # -- reading ----------------------------------------------------------------------------------------------

    @property
    def changes(self) -> int:
        return sum(1 for c in self.calls if c[0] not in ("list-panes", "capture-pane"))

    def start_listing(self) -> None:
        return None  # (nothing to begin ahead in memory)

    def start_capture(self, pane_ids: Sequence[str], lines: int = 15) -> None:
        return None

    def list_panes(self, started: object = None) -> list[Pane]:
        self.calls.append(("list-panes",))
        out = []
        for session in self.sessions.values():
            for window_id in session.windows:
                window = self.windows[window_id]
                for pane_id in window.panes:
                    out.append(self._view(session, window, self.panes[pane_id]))
        return out

    def _view(self, session: FakeSession, window: FakeWindow, pane: FakePane) -> Pane:
        tags = {**window.tags, **pane.tags}
        return Pane(
            session_id=session.id, session_name=session.name, window_id=window.id, window_name=window.name,
            pane_id=pane.id, pane_index=pane.index, pane_pid=pane.pid, dead=pane.dead, dead_status=pane.dead_status,
            dead_signal=None, current_command=pane.argv[0] if pane.argv else "", current_path=pane.cwd,
            active=pane.index == 0, server_pid=self.server_pid, server_start="1",
            task=tags.get("task", ""), role=tags.get("role", ""), worker=tags.get("worker", ""),
            agent=tags.get("agent", ""), token_hash=tags.get("token_hash", ""), pane_role=tags.get("pane_role", ""),
            workspace=tags.get("workspace", ""), proof=tags.get("proof", ""),
        )

    def which(self, program: str, path: str) -> str | None:
        """Every program is there but ``missing`` ones (the default: "missing-agent")."""
        return None if os.path.basename(program) in self.missing else f"/fake/bin/{os.path.basename(program)}"

    def server_identity(self) -> str:
        return f"{self.server_pid}:1" if self.server_pid else ""

    def session_names(self) -> set[str]:
        return {s.name for s in self.sessions.values()}

    def capture(self, pane_id: str, lines: int = 50, styled: bool = False) -> str:
        self.calls.append(("capture-pane", pane_id))
        pane = self._pane(pane_id)
        rows = list(pane.screen)
        while rows and not rows[-1].strip():
            rows.pop()
        return "\n".join(rows[-lines:])

    def capture_many(self, pane_ids: Sequence[str], lines: int = 15, started: object = None) -> dict[str, str]:
        self.calls.append(("capture-pane", *pane_ids))
        return {p: self.capture(p, lines) for p in pane_ids if p in self.panes}

    def clients(self) -> list[tuple[str, str]]:
        return list(self.attached)

    # -- creating ---------------------------------------------------------------------------------------------

    def _pane(self, pane_id: str) -> FakePane:
        if pane_id not in self.panes:
            raise MuxError(f"fake: can't find pane: {pane_id}")
        return self.panes[pane_id]

    def _program(self, argv: Sequence[str]) -> type[FakeAgent]:
        program = self.programs.get(os.path.basename(argv[0]) if argv else "", self.program)
        if not program.starts:
            raise MuxError(f"fake: {argv[0]!r} cannot be started")
        return program

    def _new_pane(self, window: FakeWindow, cwd: str, env: Mapping[str, str], argv: Sequence[str]) -> FakePane:
        if list(argv[1:3]) == ["-m", "orch.withtoken"] and "--" in argv:  # it becomes the command after "--"
            argv = argv[list(argv).index("--") + 1 :]
        pane = FakePane(f"%{next(self._ids)}", window.id, len(window.panes), next(self._pids), cwd, dict(env),
                        list(argv))
        self.panes[pane.id] = pane
        window.panes.append(pane.id)
        pane.program = self._program(argv)(pane)
        pane.program.start()
        return pane

    def _created(self, window: FakeWindow, pane: FakePane) -> Created:
        return Created(window.session_id, window.id, pane.id, pane.pid, f"{self.server_pid}:1")

    def new_session(self, name: str, window_name: str, cwd: str, env: Mapping[str, str],
                    argv: Sequence[str]) -> Created:
        self.calls.append(("new-session", name))
        if name in self.session_names():
            raise MuxError(f"fake: duplicate session: {name}")
        self._program(argv)
        if not self.server_pid:
            self.server_pid = 100 + next(self._servers)
        session = FakeSession(f"${next(self._ids)}", name)
        self.sessions[session.id] = session
        window = FakeWindow(f"@{next(self._ids)}", session.id, window_name)
        self.windows[window.id] = window
        session.windows.append(window.id)
        return self._created(window, self._new_pane(window, cwd, env, argv))

    def new_window(self, session_id: str, window_name: str, cwd: str, env: Mapping[str, str],
                   argv: Sequence[str]) -> Created:
        self.calls.append(("new-window", session_id))
        if session_id not in self.sessions:
            raise MuxError(f"fake: can't find session: {session_id}")
        self._program(argv)
        window = FakeWindow(f"@{next(self._ids)}", session_id, window_name)
        self.windows[window.id] = window
        self.sessions[session_id].windows.append(window.id)
        return self._created(window, self._new_pane(window, cwd, env, argv))

    def split_window(self, window_id: str, cwd: str, env: Mapping[str, str], argv: Sequence[str]) -> Created:
        self.calls.append(("split-window", window_id))
        window = self.windows[window_id]
        return self._created(window, self._new_pane(window, cwd, env, argv))

    def respawn_pane(self, pane_id: str, cwd: str, env: Mapping[str, str], argv: Sequence[str]) -> None:
        self.calls.append(("respawn-pane", pane_id))
        pane = self._pane(pane_id)
        pane.cwd, pane.env, pane.argv, pane.pid = cwd, dict(env), list(argv), next(self._pids)
        pane.dead, pane.dead_status, pane.screen = False, None, []

    def tag_window(self, window_id: str, tags: Mapping[str, str]) -> None:
        self.calls.append(("tag-window", window_id))
        if window_id not in self.windows:
            raise MuxError(f"fake: can't find window: {window_id}")
        self.windows[window_id].tags.update(tags)

    def tag_session(self, session_id: str, tags: Mapping[str, str]) -> None:
        self.sessions[session_id].tags.update(tags)

    def tag_pane(self, pane_id: str, tags: Mapping[str, str]) -> None:
        self._pane(pane_id).tags.update(tags)

    # -- typing -----------------------------------------------------------------------------------------------

    def paste(self, pane_id: str, data: bytes, bracketed: bool = True, keys: Sequence[str] = ()) -> None:
        self.calls.append(("paste-buffer", pane_id))
        pane = self._pane(pane_id)
        if pane.program is not None and not pane.dead:
            pane.program.paste(data.decode("utf-8", "surrogateescape"))
        if keys:
            self.send_keys(pane_id, *keys)

    def send_keys(self, pane_id: str, *keys: str) -> None:
        self.calls.append(("send-keys", pane_id, *keys))
        pane = self._pane(pane_id)
        if pane.program is not None and not pane.dead:
            pane.program.keys(keys)

    def select_pane(self, pane_id: str) -> None:
        self._pane(pane_id)

    # -- ending -----------------------------------------------------------------------------------------------

    def kill_session(self, session_id: str) -> None:
        self.calls.append(("kill-session", session_id))
        session = self.sessions.pop(session_id, None)
        for window_id in session.windows if session else []:
            for pane_id in self.windows.pop(window_id).panes:
                self.panes.pop(pane_id, None)

    def kill_window(self, window_id: str) -> None:
        self.calls.append(("kill-window", window_id))
        window = self.windows.pop(window_id, None)
        if window is None:
            return
        for pane_id in window.panes:
            self.panes.pop(pane_id, None)
        session = self.sessions[window.session_id]
        session.windows.remove(window_id)
        if not session.windows:
            del self.sessions[session.id]

    def kill_pane(self, pane_id: str) -> None:
        self.calls.append(("kill-pane", pane_id))
        pane = self.panes.pop(pane_id, None)
        if pane is None:
            return
        window = self.windows[pane.window_id]
        window.panes.remove(pane_id)
        if not window.panes:
            self.kill_window(window.id)

    def attach(self, window_id: str, wait: bool = False) -> None:
        self.calls.append(("attach", window_id))
        if window_id not in self.windows:
            raise MuxError(f"fake: can't find window: {window_id}")

    def describe(self) -> str:
        return "fake multiplexer"
