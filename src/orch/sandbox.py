"""The workers' sandbox: bubblewrap (``bwrap``), the only module that runs it.

Every worker, whatever its agent, runs inside a sandbox of its own when bubblewrap works on the machine
(``sandbox = "auto"``, the default; ``"required"`` refuses to start a worker without it; ``"off"``):

- the whole file system read-only, with a private ``/tmp``, its own process namespace (it sees no other process)
  and its own IPC namespace; the network stays (agents talk to their model);
- hidden (an empty, read-only folder in their place): orch's state folder (database, inbox, task files under it,
  logs, locks), the task folder wherever it is, and the folder of tmux's sockets;
- visible again, read-only, inside what is hidden: orch's launcher for workers and the agents' settings files;
- writable: a coder's own worktree, what git needs to commit on the task's branch (the worktree's own git folder,
  the object store, the folder of orch's branch refs and their logs), the agent's own state (``~/.claude``,
  ``~/.codex``, ...), and the worker's own spool, through which everything it says reaches orch. A reviewer gets
  the same minus the worktree and git: it can read everything it is shown and write nothing but its spool and
  its agent's state.

``plan`` is a plain description of one worker's view; ``wrap`` turns it into bwrap's arguments (a pure function);
``check`` says whether bubblewrap works here (once per process).
"""

from __future__ import annotations

import os

from orch.errors import OrchError
from orch.record import dataclass, field

MODES = ("auto", "required", "off")
TMP = "/tmp"


@dataclass(frozen=True)
class Plan:
    """What one worker sees. Paths are absolute; the ones that do not exist are left out (``*-try`` binds)."""

    chdir: str
    write: tuple[str, ...] = ()  # read-write: the coder's worktree, git's folders, the agent's state, the spool
    show: tuple[str, ...] = ()  # read-only inside hidden folders: orch's launcher, the agents' settings
    hide: tuple[str, ...] = ()  # not visible at all: orch's state, the task folder, tmux's sockets
    keep: tuple[str, ...] = field(default=())  # under /tmp, kept visible read-only (the repository, HOME)
    scratch: tuple[str, ...] = ()  # writable but private and empty, gone with the sandbox (validation's caches)
    binds: tuple[tuple[str, str, bool], ...] = ()  # (source, where it is seen, writable): last, over the rest


def _under(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def wrap(plan: Plan, argv: list[str], bwrap: str = "bwrap") -> list[str]:
    """bwrap's command line for ``argv`` in ``plan``'s view. Later mounts lie over earlier ones, so the order is:
    everything read-only, a private /tmp, what /tmp must still show, the hidden folders, what they must still show,
    the writable paths; then the hidden folders are made read-only (bwrap creates the mount points it needs in
    them while they are writable)."""
    args = [bwrap, "--die-with-parent", "--unshare-pid", "--unshare-ipc",
            "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", TMP]
    for path in sorted(p for p in plan.keep if _under(p, TMP) and p != TMP):
        args += ["--ro-bind-try", path, path]
    hidden = sorted(set(plan.hide), key=len)
    for path in hidden:
        args += ["--tmpfs", path]
    for path in plan.show:
        args += ["--ro-bind-try", path, path]
    for path in plan.scratch:  # (before the writable paths: one of yours inside it, ~/.cache/pip, stays yours)
        if os.path.isdir(path):
            args += ["--tmpfs", path]
    for path in plan.write:
        args += ["--bind-try", path, path]
    for source, dest, writable in plan.binds:
        args += ["--bind" if writable else "--ro-bind", source, dest]
    for path in hidden:
        args += ["--remount-ro", path]
    return [*args, "--chdir", plan.chdir, "--", *argv]


def find() -> str | None:
    from orch.child import which

    return which("bwrap")


_checked: dict[str, str | None] = {}
MEMO = "sandbox.checked"  # in the state folder: the probe's answer, for this boot (``check``'s memo)


def check(bwrap: str | None = None, memo: str | None = None) -> str | None:
    """None when bubblewrap works here; otherwise why not (one line). Tried once per process, and once per boot
    of the machine with a ``memo`` file (for the same bwrap and the same user-namespace settings)."""
    bwrap = bwrap or find()
    if bwrap is None:
        return "bubblewrap (bwrap) is not installed (Debian/Ubuntu: apt-get install bubblewrap)"
    if bwrap not in _checked and memo is not None:
        key = _memo_key(bwrap)
        try:
            with open(memo, encoding="utf-8") as fh:
                said = fh.read().strip()
            if said == key:  # (only a success is kept: a failure is probed again, it may have been passing)
                _checked[bwrap] = None
        except OSError:
            pass
    if bwrap not in _checked:
        import subprocess

        probe = wrap(Plan(chdir="/", hide=()), ["true"], bwrap)
        why: str | None
        try:
            proc = subprocess.run(probe, capture_output=True, timeout=20, check=False)
            said = " ".join(proc.stderr.decode("utf-8", "replace").split())[:300]
            why = None if proc.returncode == 0 else f"bubblewrap does not work here: {said}"
        except (OSError, subprocess.TimeoutExpired) as exc:
            why = f"bubblewrap does not work here: {exc}"
        _checked[bwrap] = why
        if memo is not None and why is None:
            try:
                from orch.files import atomic_write

                atomic_write(memo, _memo_key(bwrap).encode(), mode=0o600)
            except OSError:
                pass
    return _checked[bwrap]


def _memo_key(bwrap: str) -> str:
    """What the probe's answer depends on: this boot of the machine, the bwrap program, the namespace settings."""
    parts = [bwrap]
    for path in ("/proc/sys/kernel/random/boot_id", "/proc/sys/kernel/unprivileged_userns_clone",
                 "/proc/sys/user/max_user_namespaces", "/proc/sys/kernel/apparmor_restrict_unprivileged_userns"):
        try:
            with open(path, encoding="ascii") as fh:
                parts.append(fh.read().strip())
        except OSError:
            parts.append("-")
    try:
        st = os.stat(bwrap)
        parts += [str(st.st_mtime_ns), str(st.st_size)]
    except OSError:
        parts.append("-")
    return " ".join(parts)


def decide(mode: str, memo: str | None = None) -> tuple[str | None, str]:
    """(bwrap's path or None, what to say about it) for the config's ``sandbox`` mode; raises OrchError when the
    mode is "required" and bubblewrap does not work."""
    if mode == "off":
        return None, "off (sandbox = \"off\" in .orch/config.toml)"
    why = check(memo=memo)
    if why is None:
        return find(), "on (bubblewrap)"
    if mode == "required":
        raise OrchError(f"sandbox = \"required\" but {why}: no worker was started")
    return None, f"off ({why})"


def tmux_sockets() -> str:
    """The folder of tmux's sockets for this user (``tmux -L``), hidden from workers."""
    return os.path.join(os.environ.get("TMUX_TMPDIR") or TMP, f"tmux-{os.getuid()}")
