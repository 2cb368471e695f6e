"""Run a program to its end and collect its output, without ``subprocess``.

Importing ``subprocess`` costs several milliseconds (it brings selectors, threading, signal, contextlib, warnings...),
a large part of what an interactive command (``orch status``, ``scan``, ``capture``) may take. ``run`` does what
``subprocess.run(argv, input=..., env=..., capture_output=True, check=False)`` does, with ``os.posix_spawnp``
(glibc's is a vfork-like clone: cheaper than a fork) and ``select.poll`` only. This module imports nothing but
``os``, ``select``, ``errno`` and the built-in ``_signal`` (already loaded by Python at start-up).

What the child gets, as with subprocess: the program found on the PATH of the environment it is given (the current
one when ``env`` is None); SIGPIPE and SIGXFSZ back to their default action (Python ignores both, and an ignored
signal stays ignored across exec); stdout and stderr each a pipe; no other descriptor of ours: every pipe end is
opened close-on-exec, and every descriptor above 2 that is inheritable in this process at the time of the call
(Python opens none so unless asked) is closed in the child. (posix_spawn cannot "close all others" as subprocess's
``close_fds`` does: one that another thread makes inheritable during the call could slip through.) Unlike
``subprocess.run`` with no input, stdin is /dev/null rather than this process's stdin.

The exit code is ``os.waitstatus_to_exitcode``'s, as subprocess's ``returncode``: the program's exit status, or
``-N`` when signal N killed it. A program that cannot be found raises FileNotFoundError; one that cannot be run,
PermissionError (or the OSError of its execve). If the call is interrupted (an exception raised by a signal handler,
KeyboardInterrupt), the child is killed and reaped before the exception goes on. Every descriptor is closed and the
child always reaped: no zombie is left.
"""

from __future__ import annotations

import errno
import os
import select

TYPE_CHECKING = False
if TYPE_CHECKING:
    import signal as _signal
    from collections.abc import Mapping, Sequence
else:
    import _signal  # the C module under ``signal``: built in, and loaded by Python at start-up

_CHUNK = 1 << 16  # a Linux pipe's default capacity
# what subprocess's restore_signals=True puts back to the default action in the child
_RESTORE = tuple(getattr(_signal, name) for name in ("SIGPIPE", "SIGXFSZ", "SIGXFZ") if hasattr(_signal, name))


class Done:
    """A program that ran to its end (``subprocess.CompletedProcess``'s fields)."""

    __slots__ = ("args", "returncode", "stdout", "stderr")

    def __init__(self, args: list[str], returncode: int, stdout: bytes, stderr: bytes) -> None:
        self.args = args
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr

    def __repr__(self) -> str:
        return f"Done(args={self.args!r}, returncode={self.returncode}, stdout={self.stdout!r}, stderr={self.stderr!r})"


def run(argv: Sequence[str], input: bytes | None = None, env: Mapping[str, str] | None = None) -> Done:
    """Run ``argv`` with ``input`` on its stdin (/dev/null when None) and ``env`` as its environment (this
    process's when None); wait for it to end; its exit code, stdout and stderr."""
    return Running(argv, input, env).finish()


class Running:
    """A program started (``Running(argv, input, env)``) whose end and output are collected later (``finish``): the
    caller does other work while it runs. One that is not wanted any more is ended with ``cancel``."""

    def __init__(self, argv: Sequence[str], input: bytes | None = None, env: Mapping[str, str] | None = None,
                 tag: str = "") -> None:
        self.args = list(argv)
        self.tag = tag  # (the caller's note about it)
        self.input = input
        self.ended = False
        self.mine: list[int] = []  # descriptors of this process still to close
        try:
            self.stdin_w = -1
            if input is None:
                actions: list[tuple] = [(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0)]
            else:
                stdin_r, self.stdin_w = _pipe(self.mine)
                actions = [(os.POSIX_SPAWN_DUP2, stdin_r, 0)]
            self.stdout_r, stdout_w = _pipe(self.mine)
            self.stderr_r, stderr_w = _pipe(self.mine)
            # (all of them above 2, so that no dup2 below overwrites another; dup2 clears close-on-exec on its copy)
            actions += [(os.POSIX_SPAWN_DUP2, stdout_w, 1), (os.POSIX_SPAWN_DUP2, stderr_w, 2)]
            actions += [(os.POSIX_SPAWN_CLOSE, fd) for fd in _inheritable()]
            self.pid = _spawn(self.args, os.environ if env is None else env, actions)
            for fd in self.mine[:]:
                if fd not in (self.stdin_w, self.stdout_r, self.stderr_r):
                    _close(fd, self.mine)  # the child's ends
        except BaseException:
            self._close_all()
            raise

    def finish(self) -> Done:
        """Wait for the program to end: its exit code and output."""
        try:
            stdout, stderr = _communicate(self.pid, self.input, self.stdin_w, self.stdout_r, self.stderr_r, self.mine)
        except BaseException:
            self.cancel()
            raise
        self._close_all()
        self.ended = True
        return Done(self.args, _wait(self.pid), stdout, stderr)

    def cancel(self) -> None:
        """End the program (SIGKILL) and reap it; nothing when it has ended already (``finish``, ``cancel``)."""
        if self.ended:
            return
        self.ended = True
        try:
            os.kill(self.pid, _signal.SIGKILL)
        except OSError:
            pass
        _wait(self.pid)
        self._close_all()

    def _close_all(self) -> None:
        for fd in self.mine:
            os.close(fd)
        self.mine.clear()


def _pipe(mine: list[int]) -> tuple[int, int]:
    """A close-on-exec pipe whose two ends are above 2 (0, 1 and 2 are free when this process's own are closed)."""
    r, w = os.pipe2(os.O_CLOEXEC)
    mine += [r, w]
    return _high(r, mine), _high(w, mine)


def _high(fd: int, mine: list[int]) -> int:
    # (a dup2 onto the same number must clear close-on-exec: glibc >= 2.29 does, older C libraries may not)
    if fd > 2:
        return fd
    low = []
    while fd <= 2:
        low.append(fd)
        fd = os.dup(fd)  # (not inheritable)
        mine.append(fd)
    for each in low:
        _close(each, mine)
    return fd


def _close(fd: int, mine: list[int]) -> None:
    mine.remove(fd)
    os.close(fd)


def _inheritable() -> list[int]:
    """This process's descriptors above 2 that a program it runs would inherit."""
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        return []
    found = []
    for name in names:
        fd = int(name)
        if fd > 2:
            try:
                if os.get_inheritable(fd):
                    found.append(fd)
            except OSError:  # (the listing's own descriptor, closed by now)
                pass
    return found


def _spawn(args: list[str], env: Mapping[str, str], actions: list[tuple]) -> int:
    if not args:
        raise ValueError("run: empty argv")
    program = args[0]
    if "/" in program or env is os.environ or env.get("PATH") == os.environ.get("PATH"):
        # posix_spawnp looks the program up on this process's PATH: the same
        return os.posix_spawnp(program, args, env, file_actions=actions, setsigdef=_RESTORE)
    # the child's PATH is another: look the program up there, as subprocess (and execvpe) does
    denied: OSError | None = None
    for folder in os.get_exec_path(env):
        path = os.path.join(folder, program)
        if not os.path.exists(path):
            continue
        try:
            return os.posix_spawn(path, args, env, file_actions=actions, setsigdef=_RESTORE)
        except (FileNotFoundError, NotADirectoryError):
            continue
        except PermissionError as exc:
            denied = exc
    if denied is not None:
        raise denied
    raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), program)


def _communicate(
    pid: int, input: bytes | None, stdin_w: int, stdout_r: int, stderr_r: int, mine: list[int]
) -> tuple[bytes, bytes]:
    """Write ``input`` to the child and read its two outputs, all at once (each may be larger than a pipe)."""
    poller = select.poll()
    chunks: dict[int, list[bytes]] = {stdout_r: [], stderr_r: []}
    for fd in chunks:
        poller.register(fd, select.POLLIN)
    reading = 2
    view = memoryview(input or b"")
    offset = 0
    if stdin_w >= 0:
        if view:
            os.set_blocking(stdin_w, False)  # (a write then takes what the pipe has room for)
            poller.register(stdin_w, select.POLLOUT)
        else:
            _close(stdin_w, mine)
            stdin_w = -1
    while reading or stdin_w >= 0:
        for fd, _event in poller.poll():  # (retried by Python on EINTR)
            if fd == stdin_w:
                try:
                    offset += os.write(stdin_w, view[offset:])
                except BlockingIOError:
                    continue
                except BrokenPipeError:  # the child closed its stdin: what it did not read is dropped
                    offset = len(view)
                if offset >= len(view):
                    poller.unregister(stdin_w)
                    _close(stdin_w, mine)
                    stdin_w = -1
            else:
                data = os.read(fd, _CHUNK)
                if data:
                    chunks[fd].append(data)
                else:
                    poller.unregister(fd)
                    reading -= 1
    return b"".join(chunks[stdout_r]), b"".join(chunks[stderr_r])


def _wait(pid: int) -> int:
    try:
        _, status = os.waitpid(pid, 0)  # (retried by Python on EINTR)
    except ChildProcessError:  # reaped by someone else (SIGCHLD ignored): subprocess says 0 too
        return 0
    return os.waitstatus_to_exitcode(status)


def which(program: str, path: str | None = None) -> str | None:
    """Where ``program`` is on ``path`` (default: $PATH), as ``shutil.which`` answers: an executable file."""
    if os.sep in program:
        return program if _runnable(program) else None
    for folder in (path if path is not None else os.environ.get("PATH", os.defpath)).split(os.pathsep):
        found = os.path.join(folder or ".", program)
        if _runnable(found):
            return found
    return None


def _runnable(path: str) -> bool:
    return os.access(path, os.X_OK) and not os.path.isdir(path)

