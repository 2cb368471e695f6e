"""The host of a sandboxed worker: the process tmux runs in the worker's pane, outside the sandbox.

``python -m orch.workerhost <workspace root> <worker id> <spool folder> [--view V --refs R] -- <bwrap ...>``

It starts the sandbox (bwrap and the agent in it) as its child and, while the child runs, hands on what the worker
writes to its spool (``orch -``, ``orch verdict``, ``orch hook`` inside the sandbox write only there) to the
workspace's inbox, stamped with the worker it came from, then has it applied as `orch -` would (unless a daemon
runs, which applies it itself). The worker cannot see this process (its own process namespace), the inbox or the
database; who a message is from is where it was written, never what it says. A coder's host also carries each of
its commits onto the task's branch at once (``--view``: the task's view of its branch, orch/branchview.py;
``--refs``: the repository's folder of orch's branches, for a move made outside). Signals to the pane (tmux ending the
window) go to the child; the host ends with the child's exit status, so the pane's dead status is the agent's.
Standard library only, like the hot path: it starts with every worker.
"""

import os
import select
import signal
import sys

from orch import inbox
from orch.entry import private_umask
from orch.hot import hook_problem, kick
from orch.workspace import Workspace


def main(argv: list[str]) -> int:
    view = refs = ""
    if len(argv) > 7 and argv[3] == "--view" and argv[5] == "--refs":
        view, refs, argv = argv[4], argv[6], argv[:3] + argv[7:]
    if len(argv) < 5 or argv[3] != "--":
        sys.stderr.write("usage: python -m orch.workerhost ROOT WORKER SPOOL [--view V --refs R] -- COMMAND...\n")
        return 2
    root, worker, spool, command = argv[0], argv[1], argv[2], argv[4:]
    ws = Workspace(root)
    private_umask()  # nothing the worker writes (its refs in orch's folder among it) is world-writable
    for sub in ("tmp", "new"):
        os.makedirs(os.path.join(spool, sub), mode=0o700, exist_ok=True)
    pid = os.fork()
    if pid == 0:
        try:
            os.execvp(command[0], command)
        except OSError as exc:
            sys.stderr.write(f"orch: cannot start the sandbox ({command[0]}): {exc.strerror or exc}\n")
        os._exit(127)

    def forward(signum: int, _frame: object) -> None:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT, signal.SIGQUIT):
        signal.signal(signum, forward)
    watch = _watch([os.path.join(spool, "new"), *([os.path.join(view, "heads"), refs] if view else [])])
    leaf = ""
    if view:  # a coder's host (orch.branchview, and git through it, only for those)
        from orch import branchview

        leaf = branchview.leaf(branchview.branch_of(view))
    try:
        child = os.pidfd_open(pid)
    except (AttributeError, OSError):
        child = None
    status, done = 0, False
    while not done:
        _hand_on(ws, spool, worker)
        while True:  # the child, and the appliers `kick` started (reaped so they leave no zombies)
            try:
                ended, code = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                done = True
                break
            if ended == 0:
                break
            if ended == pid:
                status, done = code, True
        if done:
            break
        fds = [fd for fd in (watch.fileno() if watch is not None else None, child) if fd is not None]
        ready, _, _ = select.select(fds, [], [], 5.0 if watch is not None and child is not None else 0.5)
        if watch is not None and watch.fileno() in ready:
            changed = watch.changes()
            # its own branch's files only (the folder of orch's branches holds every task's: not theirs)
            if view and any(os.path.basename(path) in (leaf, "packed-refs") for path in changed
                            if not path.startswith(spool)):
                _carry(root, view, worker)
    _hand_on(ws, spool, worker)  # what it said last
    if os.WIFSIGNALED(status):
        signal.signal(os.WTERMSIG(status), signal.SIG_DFL)
        os.kill(os.getpid(), os.WTERMSIG(status))
    return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 1


def _carry(root: str, view: str, worker: str) -> None:
    from orch import branchview

    try:
        _, problem = branchview.carry(root, view)
    except Exception as exc:  # noqa: BLE001 - the pass carries it then, and says why
        problem = f"{type(exc).__name__}: {exc}"
    if problem:
        hook_problem(Workspace(root), f"worker host {worker}: {problem}")


def _watch(folders: list[str]):
    try:
        from orch.fswatch import Watcher

        watcher = Watcher(folders)
        return watcher if watcher.fileno() is not None else None
    except OSError:
        return None


def _hand_on(ws: Workspace, spool: str, worker: str) -> None:
    try:
        if inbox.forward(ws, spool, worker):
            kick(ws)
    except OSError as exc:
        hook_problem(ws, f"worker host {worker}: cannot hand on its messages: {exc}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
