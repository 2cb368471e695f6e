"""The tmux backend, and the only module that runs tmux. orch uses its own server (``tmux -L <socket>``).

Everything is addressed by tmux ids (``$N`` session, ``@N`` window, ``%N`` pane), never by index or name, and all
arguments go to tmux as an argument list. Text reaches a pane only through a named paste buffer. orch's tags are
user options on windows (``@orch_ws``, ``@orch_task``, ...), readable by any tmux command of the same server.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Mapping, Sequence

from orch import child
from orch.errors import OrchError
from orch.mux import Created, MuxError, Pane, Reading

SEP = "\x1f"
# orch's tags (orch.mux.WINDOW_TAGS, PANE_TAGS) as tmux user options
OPTION = {"workspace": "@orch_ws", "task": "@orch_task", "role": "@orch_role", "worker": "@orch_worker",
          "agent": "@orch_agent", "token_hash": "@orch_token_hash", "pane_role": "@orch_pane", "proof": "@orch_proof"}
TAGS = ("@orch_task", "@orch_role", "@orch_worker", "@orch_agent", "@orch_token_hash", "@orch_pane", "@orch_ws",
        "@orch_proof")
_PANE_FIELDS = (
    "session_id",
    "session_name",
    "window_id",
    "window_name",
    "pane_id",
    "pane_index",
    "pane_pid",
    "pane_dead",
    "pane_dead_status",
    "pane_dead_signal",
    "pane_current_command",
    "pane_current_path",
    "pane_active",
    "pid",
    "start_time",
    *TAGS,
)
_PANE_FORMAT = SEP.join(f"#{{{f}}}" for f in _PANE_FIELDS)


def parse_pane(line: str) -> Pane | None:
    parts = line.split(SEP)
    if len(parts) != len(_PANE_FIELDS):
        return None
    (sid, sname, wid, wname, pid, pidx, ppid, dead, dstat, dsig, cmd, path, active, spid, sstart, *tags) = parts
    return Pane(
        session_id=sid,
        session_name=sname,
        window_id=wid,
        window_name=wname,
        pane_id=pid,
        pane_index=_int(pidx),
        pane_pid=_int(ppid),
        dead=dead == "1",
        dead_status=_int(dstat) if dstat != "" else None,
        dead_signal=_int(dsig) if dsig != "" else None,
        current_command=cmd,
        current_path=path,
        active=active == "1",
        server_pid=_int(spid),
        server_start=sstart,
        task=tags[0],
        role=tags[1],
        worker=tags[2],
        agent=tags[3],
        token_hash=tags[4],
        pane_role=tags[5],
        workspace=tags[6],
        proof=tags[7],
    )


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        return 0


CREATED_FORMAT = "#{session_id} #{window_id} #{pane_id} #{pane_pid} #{pid} #{start_time}"


_LISTING = ("display-message", "-p", "#{pid}:#{start_time}", ";", "list-panes", "-a", "-F", _PANE_FORMAT)
def _capture_args(pane_ids: Sequence[str], lines: int, marker: str) -> list[str]:
    """One tmux command line capturing each pane, each capture followed by ``marker`` on a line of its own."""
    args: list[str] = []
    for pane_id in pane_ids:
        if args:
            args.append(";")
        args += ["capture-pane", "-p", "-J", "-t", pane_id, "-S", f"-{lines}", ";", "display-message", "-p", marker]
    return args


READS = frozenset({"display-message", "list-panes", "list-sessions", "list-clients", "list-windows", "capture-pane",
                   "show-options", "show-environment", "has-session"})  # (tmux commands that change nothing)


class Tmux:
    """One tmux server, by socket name: the multiplexer backend orch uses on this machine."""

    def __init__(self, socket: str, binary: str = "tmux") -> None:
        self.socket = socket
        self.binary = binary
        self._server: str | None = None
        self.changes = 0  # commands run that may have changed the server (a listing before them is stale)

    def _argv(self, args: Sequence[str]) -> list[str]:
        return [self.binary, "-L", self.socket, *args]

    def run(self, *args: str, input: bytes | None = None, check: bool = True) -> child.Done:
        commands = [args[0], *(args[i + 1] for i, a in enumerate(args[:-1]) if a == ";")] if args else []
        if not all(c in READS for c in commands):
            self.changes += 1
        try:
            proc = child.run(self._argv(args), input=input)
        except FileNotFoundError:
            raise OrchError("tmux is not installed: install tmux >= 3.2 (e.g. `apt-get install tmux`)") from None
        if check and proc.returncode != 0:
            err = proc.stderr.decode("utf-8", "replace").strip() or f"exit {proc.returncode}"
            raise TmuxError(f"tmux {args[0]}: {err}")
        return proc

    def out(self, *args: str) -> str:
        return self.run(*args).stdout.decode("utf-8", "replace")

    # -- reading -----------------------------------------------------------------------------------------------

    def start_listing(self) -> child.Running | None:
        """Start the call ``list_panes`` makes, for a caller with other work to do meanwhile (None: tmux is missing;
        ``list_panes`` says so)."""
        try:
            return child.Running(self._argv(_LISTING))
        except FileNotFoundError:
            return None

    def list_panes(self, started: Reading | None = None) -> list[Pane]:
        """Every pane of the server in one tmux call (``started``: that call, begun by ``start_listing``); [] when
        the server is not running.

        A pane whose terminal closed before its process exited is dead with no status until tmux reaps the process.
        Debian's tmux (built with libutempter) can miss that SIGCHLD and keep the zombie for ever; a SIGCHLD sent to
        the server makes it reap, so such a listing is nudged once and read again.
        """
        panes = self._list_panes(started)
        unreaped = {p.server_pid for p in panes if p.dead and p.dead_status is None and p.dead_signal is None}
        if unreaped - {0}:
            for pid in unreaped - {0}:
                try:
                    os.kill(pid, signal.SIGCHLD)
                except OSError:
                    pass
            panes = self._list_panes()
        return panes

    def _list_panes(self, started: Reading | None = None) -> list[Pane]:
        # the server's identity first (it answers even with no session left), then every pane, in one process
        proc = started.finish() if isinstance(started, child.Running) else self.run(*_LISTING, check=False)
        lines = proc.stdout.decode("utf-8", "replace").splitlines()
        self._server = lines[0] if lines and ":" in lines[0] and SEP not in lines[0] else ""
        if proc.returncode != 0:
            err = proc.stderr.decode("utf-8", "replace")
            if _no_server(err):
                self._server = ""  # (gone while it answered: no server now)
                return []
            if self._server and "no current target" in err:
                return []
            raise TmuxError(f"tmux list-panes: {err.strip()}")
        panes = []
        for line in lines[1:]:
            pane = parse_pane(line)
            if pane is not None:
                panes.append(pane)
        return panes

    def which(self, program: str, path: str) -> str | None:
        return child.which(program, path=path)

    def server_identity(self) -> str:
        """The server's identity as of the last ``list_panes`` ("<pid>:<start time>"; "" when none runs)."""
        if self._server is None:
            self._list_panes()
        return self._server or ""

    def describe(self) -> str:
        return f"tmux -L {self.socket}"

    def session_names(self) -> set[str]:
        proc = self.run("list-sessions", "-F", "#{session_name}", check=False)
        if proc.returncode != 0:
            return set()
        return set(proc.stdout.decode("utf-8", "replace").splitlines())

    def capture(self, pane_id: str, lines: int = 50, styled: bool = False) -> str:
        """The last ``lines`` non-blank-trailing lines of a pane (history included); ``styled``: with ``-e``."""
        text = self.out("capture-pane", "-p", "-J", *(["-e"] if styled else []), "-t", pane_id, "-S",
                        f"-{max(lines, 1)}")
        rows = text.split("\n")
        while rows and not rows[-1].strip():
            rows.pop()
        return "\n".join(rows[-lines:])

    def start_capture(self, pane_ids: Sequence[str], lines: int = 15) -> child.Running | None:
        """Start the call ``capture_many`` makes (see ``start_listing``)."""
        marker = f"@@orch-{os.urandom(6).hex()}@@"
        try:
            return child.Running(self._argv(_capture_args(pane_ids, lines, marker)), tag=marker)
        except FileNotFoundError:
            return None

    def capture_many(self, pane_ids: Sequence[str], lines: int = 15, started: Reading | None = None) -> dict[str, str]:
        """The last lines of several panes in one tmux process (a missing pane is captured alone later);
        ``started``: that call, begun by ``start_capture`` for the same panes."""
        if not pane_ids:
            return {}
        if isinstance(started, child.Running):
            proc, marker = started.finish(), started.tag
        else:
            marker = f"@@orch-{os.urandom(6).hex()}@@"
            proc = self.run(*_capture_args(pane_ids, lines, marker), check=False)
        parts = proc.stdout.decode("utf-8", "replace").split(marker + "\n")
        found: dict[str, str] = {}
        for pane_id, text in zip(pane_ids, parts[:-1], strict=False):
            rows = text.split("\n")
            while rows and not rows[-1].strip():
                rows.pop()
            found[pane_id] = "\n".join(rows[-lines:])
        for pane_id in pane_ids[len(found) :]:
            try:
                found[pane_id] = self.capture(pane_id, lines)
            except TmuxError:
                continue
        return found

    def clients(self) -> list[tuple[str, str]]:
        """(client tty, window id) of every attached client."""
        proc = self.run("list-clients", "-F", "#{client_tty}" + SEP + "#{window_id}", check=False)
        if proc.returncode != 0:
            return []
        out = []
        for line in proc.stdout.decode("utf-8", "replace").splitlines():
            tty, _, window = line.partition(SEP)
            out.append((tty, window))
        return out

    # -- creating ------------------------------------------------------------------------------------------------

    def new_session(
        self, name: str, window_name: str, cwd: str, env: Mapping[str, str], argv: Sequence[str]
    ) -> Created:
        # the server stays when its last session ends (a window closed by hand, an agent that exits at once), so that
        # only a server that really went away (kill-server, a reboot) makes workers "lost with the server"; set before
        # the session exists, in the same tmux process
        args = ["start-server", ";", "set-option", "-s", "exit-empty", "off", ";"]
        args += ["new-session", "-d", "-P", "-F", CREATED_FORMAT]
        args += ["-s", literal(name), "-n", literal(window_name), "-c", literal(cwd), "-x", "200", "-y", "50"]
        return self._create(args, env, argv)

    def new_window(
        self, session_id: str, window_name: str, cwd: str, env: Mapping[str, str], argv: Sequence[str]
    ) -> Created:
        args = ["new-window", "-d", "-P", "-F", CREATED_FORMAT]
        args += ["-t", session_id + ":", "-n", literal(window_name), "-c", literal(cwd)]
        return self._create(args, env, argv)

    def split_window(self, window_id: str, cwd: str, env: Mapping[str, str], argv: Sequence[str]) -> Created:
        args = ["split-window", "-d", "-h", "-P", "-F", CREATED_FORMAT]
        args += ["-t", window_id, "-c", literal(cwd)]
        return self._create(args, env, argv)

    def respawn_pane(self, pane_id: str, cwd: str, env: Mapping[str, str], argv: Sequence[str]) -> None:
        args = ["respawn-pane", "-k", "-t", pane_id, "-c", literal(cwd)]
        for key, value in env.items():
            args += ["-e", literal(f"{key}={value}")]
        self.run(*args, "--", *_exec_argv(argv, env.get("PATH")))

    def _create(self, args: list[str], env: Mapping[str, str], argv: Sequence[str]) -> Created:
        for key, value in env.items():
            args += ["-e", literal(f"{key}={value}")]
        out = self.out(*args, "--", *_exec_argv(argv, env.get("PATH"))).split()
        if len(out) != 6:
            raise TmuxError(f"tmux did not report the new pane ({' '.join(out)!r})")
        return Created(out[0], out[1], out[2], _int(out[3]), f"{out[4]}:{out[5]}")

    def _set_options(self, scope: str, target: str, options: Mapping[str, str]) -> None:
        # one tmux process for all options: commands separated by ';' arguments
        args: list[str] = []
        for key, value in options.items():
            if args:
                args.append(";")
            args += ["set-option", *([scope] if scope else []), "-t", target, key, literal(value)]
        if args:
            self.run(*args)

    def tag_window(self, window_id: str, tags: Mapping[str, str]) -> None:
        """orch's tags, plus: the pane stays after the agent exits (its exit status and last screen are kept), and
        tmux never renames the window."""
        options = {OPTION[k]: v for k, v in tags.items()}
        self._set_options("-w", window_id, {**options, "remain-on-exit": "on", "automatic-rename": "off"})

    def tag_session(self, session_id: str, tags: Mapping[str, str]) -> None:
        self._set_options("", session_id, {OPTION[k]: v for k, v in tags.items()})

    def tag_pane(self, pane_id: str, tags: Mapping[str, str]) -> None:
        self._set_options("-p", pane_id, {OPTION[k]: v for k, v in tags.items()})

    # -- typing ------------------------------------------------------------------------------------------------

    def paste(self, pane_id: str, data: bytes, bracketed: bool = True, keys: Sequence[str] = ()) -> None:
        """Put ``data`` into a pane's input through a named paste buffer (deleted after use), then ``keys`` if
        given: one tmux call (its commands run in order; the first that fails ends it)."""
        buffer = f"orch-{os.getpid()}-{os.urandom(4).hex()}"
        args = ["load-buffer", "-b", buffer, "-", ";", "paste-buffer", "-d", "-r", "-b", buffer, "-t", pane_id]
        if bracketed:
            args.insert(args.index("paste-buffer") + 1, "-p")
        if keys:
            args += [";", "send-keys", "-t", pane_id, *keys]
        proc = self.run(*args, input=data, check=False)
        if proc.returncode != 0:
            self.run("delete-buffer", "-b", buffer, check=False)
            raise TmuxError(f"tmux paste-buffer: {proc.stderr.decode('utf-8', 'replace').strip()}")

    def send_keys(self, pane_id: str, *keys: str) -> None:
        self.run("send-keys", "-t", pane_id, *keys)

    def select_pane(self, pane_id: str) -> None:
        self.run("select-window", "-t", pane_id, ";", "select-pane", "-t", pane_id)

    # -- ending ------------------------------------------------------------------------------------------------

    def kill_session(self, session_id: str) -> None:
        self.run("kill-session", "-t", session_id, check=False)

    def kill_window(self, window_id: str) -> None:
        self.run("kill-window", "-t", window_id, check=False)

    def kill_pane(self, pane_id: str) -> None:
        self.run("kill-pane", "-t", pane_id, check=False)

    def kill_server(self) -> None:
        self.run("kill-server", check=False)

    def attach(self, window_id: str, wait: bool = False) -> None:
        """Show ``window_id`` on this terminal: switch the client when already inside this server, else attach.
        Replaces the current process (the terminal is handed to tmux); with ``wait``, returns once the person
        detaches (a dashboard that steps aside)."""
        env = dict(os.environ)
        inside = bool(env.get("TMUX")) and os.path.realpath(env["TMUX"].split(",")[0]) == os.path.realpath(
            socket_path(self.socket)
        )
        if inside:
            argv = self._argv(["switch-client", "-t", window_id])
        else:
            if not os.isatty(0):
                raise OrchError(f"attach needs a terminal; run from one: tmux -L {self.socket} attach -t {window_id}")
            env.pop("TMUX", None)  # attaching from inside another tmux server nests, which is what was asked
            argv = self._argv(["attach-session", "-t", window_id])
        if wait:
            pid = os.posix_spawnp(argv[0], argv, env)
            os.waitpid(pid, 0)
            return
        os.execvpe(argv[0], argv, env)


class TmuxError(MuxError):
    pass


def _no_server(stderr: str) -> bool:
    """tmux's words for "no server" (none runs, or the one asked exited while answering: killed, or ending)."""
    return any(words in stderr for words in ("no server running", "error connecting to", "No such file",
                                             "server exited unexpectedly", "lost server"))


def literal(arg: str) -> str:
    """An argument tmux takes as it is. tmux reads an argument ending in ';' as the end of its command (the next
    arguments would run as another tmux command); ``\\;`` at the end is a literal ';'."""
    return arg[:-1] + "\\;" if arg.endswith(";") else arg


def _exec_argv(argv: Sequence[str], path: str | None = None) -> list[str]:
    """tmux runs a single-word command through ``sh -c``; several words are exec'd directly. Always exec. Every
    argument is passed literally (see ``literal``). tmux gives a new pane the PATH of the client that made it, not
    the one in ``-e``: a PATH of the worker's own is set by ``env`` in front of the command."""
    argv = [literal(a) for a in argv]
    if path is not None:
        return ["env", "--", literal(f"PATH={path}"), *argv]
    if len(argv) == 1:
        return ["env", "--", argv[0]]
    return argv


def socket_path(socket: str) -> str:
    base = os.environ.get("TMUX_TMPDIR") or "/tmp"
    return os.path.join(base, f"tmux-{os.getuid()}", socket)
