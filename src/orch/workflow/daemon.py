"""`orch run`: one daemon per workspace that acts on task files and messages as they arrive.

It sleeps in ``select`` on the kernel's file notifications for the task folder and the inbox (see fswatch.py) and
on a signal pipe, so it uses no CPU while nothing happens. A change runs a reconcile pass (the same pass as
`orch scan`, under the same lock, so commands run by hand never fight it); a full pass also runs every
``scan_interval`` seconds, and while a worker is starting or working its screen is read every couple of seconds.
SIGTERM or SIGINT ends it after the pass in hand; workers keep running in tmux.

Only one daemon runs per workspace: it holds ``.orch/locks/daemon.lock`` for its whole life (the kernel lets go when
it dies, even by kill -9) and writes its pid to ``.orch/daemon.pid``.
"""

from __future__ import annotations

import fcntl
import os
import select
import signal
import time
from collections.abc import Callable

from orch.errors import OrchError
from orch.files import written_by_us
from orch.workflow.context import Ctx
from orch.workspace import Workspace, daemon_pid

OBSERVE_INTERVAL = 2.0  # seconds between screen readings while a worker is starting or working
POLL_INTERVAL = 1.0  # seconds between folder listings where the kernel gives no notifications
MODEL_EVERY = 0.3  # seconds between two builds of the status model (the dashboards' data), at most
AFTER_MESSAGES = 0.5  # seconds from a wake-up by messages alone (applied at once) to the full pass that follows
BUSY_STATES = frozenset({"starting", "working", "waiting"})
STANDING = ("waiting:", "orphan window", "invalid task file")


def lock_file(ws: Workspace) -> str:
    return os.path.join(ws.locks, "daemon.lock")


def pid_file(ws: Workspace) -> str:
    return ws.path("daemon.pid")


def running(ws: Workspace) -> int | None:
    """The pid of the workspace's daemon (-1 while it starts), or None when none runs."""
    return daemon_pid(ws)


class Daemon:
    def __init__(self, ctx: Ctx, say: Callable[[str], None]) -> None:
        self.ctx = ctx
        self.say = say
        self.stopping = False
        self._lock_fd: int | None = None
        self._db_id: tuple[int, int] | None = None
        self._standing: set[str] = set()
        self.passes = 0
        self._model_due, self._model_at = False, 0.0
        self.settle_in = 0.0  # the last pass left a task file still being written: pass again this soon

    # -- life ------------------------------------------------------------------------------------------------------

    def acquire(self) -> None:
        ws = self.ctx.ws
        os.makedirs(ws.locks, exist_ok=True)
        fd = os.open(lock_file(ws), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            pid = running(ws)
            shown = f"pid {pid}" if pid and pid > 0 else "starting up"
            raise OrchError(f"a daemon is already running for this workspace ({shown}); `orch stop` ends it") from None
        self._lock_fd = fd
        tmp = pid_file(ws) + ".tmp"
        with open(tmp, "w", encoding="ascii") as fh:
            fh.write(f"{os.getpid()}\n")
        os.replace(tmp, pid_file(ws))

    def release(self) -> None:
        try:
            with open(pid_file(self.ctx.ws), encoding="ascii") as fh:
                mine = fh.read().split()[:1] == [str(os.getpid())]
            if mine:
                os.unlink(pid_file(self.ctx.ws))
        except OSError:
            pass
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def _on_signal(self, signum: int, _frame: object) -> None:
        self.stopping = True
        self.ctx.stopping = True  # a pass in hand finishes the write it is at, and leaves the rest for later

    def run(self) -> None:
        """Run until SIGTERM or SIGINT."""
        from orch.fswatch import Watcher

        self.acquire()
        cluster = None
        if self.ctx.cfg.cluster.address:  # many hosts: the reports of the tasks on hosts are applied here
            from orch.workflow.fleet import Runtime

            cluster = Runtime(self.ctx, self.say)
            try:
                cluster.start()  # (a server that does not answer: said, and tried again meanwhile)
            except BaseException:
                cluster.stop()
                self.release()
                raise
            self.ctx.fleet = cluster
        wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        old_wakeup = signal.set_wakeup_fd(wake_w)
        ctx = self.ctx
        watcher = Watcher([ctx.cfg.tasks_path, ctx.ws.inbox_new])
        try:
            ctx.event("daemon", f"started (pid {os.getpid()}), watching {ctx.cfg.tasks_path} and the inbox")
            self.say(f"orch daemon started (pid {os.getpid()}) for {ctx.ws.root}")
            self.reconcile("start")
            next_full = time.monotonic() + (self.settle_in + 0.05 if self.settle_in else ctx.cfg.scan_interval)
            next_look = time.monotonic() + OBSERVE_INTERVAL
            while not self.stopping:
                now = time.monotonic()
                wait = next_full - now
                if self._busy():
                    wait = min(wait, next_look - now)
                if watcher.fileno() is None:
                    wait = min(wait, POLL_INTERVAL)
                if self._model_due:
                    wait = min(wait, self._model_at + MODEL_EVERY - now)
                watched = watcher.fileno()
                fds = [wake_r] if watched is None else [wake_r, watched]
                ready, _, _ = select.select(fds, [], [], max(wait, 0))
                if wake_r in ready:
                    _drain(wake_r)
                if self.stopping:
                    break
                changed = self._relevant(watcher.changes())
                now = time.monotonic()
                if changed:
                    time.sleep(0.02)  # let a burst of writes land: one pass for all of them
                    changed += self._relevant(watcher.changes())
                    inbox = ctx.ws.inbox_new
                    if all(path == inbox or os.path.dirname(path) == inbox for path in changed):
                        # only messages: applied now (with the review loop they move), and a full pass soon after
                        # for what they may start; a flood of messages is not a flood of full passes (nor does it
                        # hold off the full pass and the screen readings: they are due as before, below)
                        self.look(screens=False)
                        next_full = min(next_full, time.monotonic() + AFTER_MESSAGES)
                    else:
                        self.reconcile(_why(changed))
                        next_look = time.monotonic() + OBSERVE_INTERVAL
                        if self.settle_in:  # a task file still being written: the pass that starts it, once it rests
                            next_full = min(next_full, time.monotonic() + self.settle_in + 0.05)
                        continue
                    now = time.monotonic()
                if now >= next_full:
                    self.reconcile("interval")
                    next_full = time.monotonic() + (self.settle_in + 0.05 if self.settle_in else ctx.cfg.scan_interval)
                    next_look = time.monotonic() + OBSERVE_INTERVAL
                elif now >= next_look:
                    if self._busy():
                        self.look()
                    next_look = time.monotonic() + OBSERVE_INTERVAL
                if self._model_due and time.monotonic() >= self._model_at + MODEL_EVERY:
                    self._write_model()
        finally:
            signal.set_wakeup_fd(old_wakeup)
            for s, handler in previous.items():
                signal.signal(s, handler)
            os.close(wake_r)
            os.close(wake_w)
            watcher.close()
            if cluster is not None:
                cluster.stop()
                ctx.fleet = None
            ctx.event("daemon", f"stopped (pid {os.getpid()}) after {self.passes} pass(es); workers left running")
            self.say(f"orch daemon stopped (pid {os.getpid()}); workers keep running")
            self.release()

    # -- passes ----------------------------------------------------------------------------------------------------

    def reconcile(self, why: str) -> None:
        """A full pass (`orch scan`'s), reported one line per action."""
        from orch.workflow.scan import scan

        self._check_store()
        try:
            report = scan(self.ctx, settle=True)
        except OrchError as exc:
            self.say(f"pass ({why}) failed: {exc}")
            return
        except Exception as exc:  # noqa: BLE001 - a bug in one pass must not end the daemon
            self._unexpected(why, exc)
            return
        self.passes += 1
        self.settle_in = report.settle_in
        self._model()
        standing = set()
        for line in report.lines():
            if line.startswith(STANDING):
                standing.add(line)
                if line in self._standing:
                    continue  # said already: a standing condition is reported when it appears, not every pass
            self.say(f"{line}  [{why}]")
        self._standing = standing

    def look(self, screens: bool = True) -> None:
        """Between full passes: messages, worker screens (unless ``screens`` is False: woken by messages alone),
        the review loop."""
        from orch.locks import hold
        from orch.workflow import inbox, watch
        from orch.workflow.scan import ScanReport, advance_pipeline

        self._check_store()
        ctx = self.ctx
        with hold(ctx.lock_path("scan"), wait=0) as got:
            if not got:
                return  # a pass run by hand is on it
            report = ScanReport()
            try:
                report.applied += inbox.drain(ctx)
                if screens:
                    report.pipeline += watch.observe(ctx, ctx.panes())
                advance_pipeline(ctx, report)
            except OrchError as exc:
                self.say(f"reading the workers failed: {exc}")
                return
            except Exception as exc:  # noqa: BLE001 - as in reconcile()
                self._unexpected("screens", exc)
                return
        for line in report.pipeline:
            self.say(line)
        if report.pipeline or report.applied:
            self._model()

    def _model(self) -> None:
        """The status model is due: written at most once per MODEL_EVERY (a burst of passes builds it once)."""
        self._model_due = True
        if time.monotonic() >= self._model_at + MODEL_EVERY:
            self._write_model()

    def _write_model(self) -> None:
        """The status model for the dashboards, written when it changed."""
        from orch.workflow import model

        self._model_due, self._model_at = False, time.monotonic()
        try:
            model.write(self.ctx)
        except OrchError as exc:
            self.say(f"the status model could not be written: {exc}")
        except Exception as exc:  # noqa: BLE001 - as in reconcile(): the daemon goes on
            self._unexpected("the status model", exc)

    def _unexpected(self, why: str, exc: Exception) -> None:
        import traceback

        self.say(f"pass ({why}) failed unexpectedly: {type(exc).__name__}: {exc}; the daemon goes on "
                 "(please report this with the traceback below)")
        self.say(traceback.format_exc().rstrip())
        self.ctx.event("daemon", f"pass ({why}) failed unexpectedly: {type(exc).__name__}: {exc}")

    def _busy(self) -> bool:
        """A worker is starting or working, or idle with a reminder about to fall due: look again soon."""
        cfg, now = self.ctx.cfg, time.time()
        for w in self.ctx.store.live_workers():
            if w.state in BUSY_STATES:
                return True
            if (w.state == "idle" and cfg.idle_reminder and now - w.state_since < cfg.idle_reminder_after + 60
                    and (w.reminded_at is None or w.reminded_at < (w.prompted_at or w.created_at))):
                return True
        return False

    # -- what changed ----------------------------------------------------------------------------------------------

    def _relevant(self, paths: list[str]) -> list[str]:
        out = []
        inbox = self.ctx.ws.inbox_new
        for path in dict.fromkeys(paths):
            if os.path.dirname(path) == inbox or path == inbox:
                if path == inbox or os.path.exists(path):  # our own drain removes files: not news
                    out.append(path)
                continue
            if path == self.ctx.cfg.tasks_path:
                out.append(path)
                continue
            if not path.endswith(".md"):
                continue  # editors' and orch's temporary files
            if not written_by_us(path):  # orch's own writes are not news; a person's edit or a new file is
                out.append(path)
        return out

    def _check_store(self) -> None:
        """A database deleted or replaced under the daemon is opened again (and rebuilt by the pass)."""
        try:
            st = os.stat(self.ctx.ws.db_file)
            ident = (st.st_dev, st.st_ino)
        except OSError:
            ident = None
        if self._db_id is not None and ident != self._db_id and "store" in self.ctx.__dict__:
            self.ctx.store.close()
            del self.ctx.__dict__["store"]
            self.say("the database file changed under the daemon: opened it again")
        self.ctx.store  # noqa: B018 - opens (or creates) it now
        try:
            st = os.stat(self.ctx.ws.db_file)
            self._db_id = (st.st_dev, st.st_ino)
        except OSError:
            self._db_id = None


def _why(paths: list[str]) -> str:
    kinds = sorted({"inbox" if "/inbox/" in p or p.endswith("/inbox/new") else "tasks" for p in paths})
    return "+".join(kinds)


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 4096):
            pass
    except BlockingIOError:
        pass


def detach(ws: Workspace, start: Callable[[], None], log_path: str, wait: float = 10.0) -> int:
    """Start the daemon in the background (its output appended to ``log_path``); returns its pid once it runs."""
    pid = running(ws)
    if pid:
        raise OrchError(f"a daemon is already running for this workspace (pid {pid}); `orch stop` ends it")
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    child = os.fork()
    if child == 0:
        code = 0
        try:
            os.setsid()
            log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)
            os.dup2(log, 1)
            os.dup2(log, 2)
            start()
        except OrchError as exc:
            os.write(2, f"orch: {exc}\n".encode())
            code = exc.code
        except BaseException as exc:  # noqa: BLE001 - the background child reports and ends
            import traceback

            os.write(2, f"orch daemon crashed: {type(exc).__name__}: {exc}\n{traceback.format_exc()}".encode())
            code = 1
        finally:
            os._exit(code)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        done, status = os.waitpid(child, os.WNOHANG)
        if done:
            raise OrchError(f"the daemon did not start (exit {os.waitstatus_to_exitcode(status)}); see {log_path}")
        if running(ws) == child:
            return child
        time.sleep(0.02)
    raise OrchError(f"the daemon did not report within {wait:g}s; see {log_path}")


def stop(ws: Workspace, wait: float = 30.0) -> int:
    """SIGTERM the workspace's daemon and wait until it has let go of its lock; returns its pid."""
    pid = running(ws)
    if not pid or pid < 0:
        raise OrchError("no orch daemon is running for this workspace (`orch run --detach` starts one)")
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return pid
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if running(ws) is None:
            return pid
        time.sleep(0.05)
    raise OrchError(f"the daemon (pid {pid}) did not stop within {wait:g}s; `kill -9 {pid}` ends it (nothing is lost)")
