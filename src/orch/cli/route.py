"""Commands that reach a worker's window: send, exec, capture, attach. The worker address is the only target."""

from __future__ import annotations

import sys

from orch.cli.app import context
from orch.errors import OrchError


def on_host(worker: str | None, args: list[str], timeout: float = 60.0, running: bool = False) -> int | None:
    """A command for a worker of a task on a host: run by that host's orch, its output and exit code passed on
    (None: the task is not on a host, the command runs here)."""
    if not worker:
        return None
    ctx = context()
    if not ctx.cfg.cluster.address:
        return None
    from orch.workflow import remote

    row = remote.where(ctx, worker.split(":", 1)[0], running)
    if row is None:
        return None
    got = remote.route(ctx, row, args, timeout)
    sys.stdout.write(got.get("out", ""))
    sys.stderr.write(got.get("err", ""))
    return int(got.get("code", 1))


def send(worker: str | None, text: list[str], pane: str | None) -> int:
    from orch.workflow.route import send as do_send

    words = list(text or [])
    if pane is not None and worker is not None:
        words.insert(0, worker)
        worker = None
    if words:
        body = " ".join(words)
    elif not sys.stdin.isatty():
        body = sys.stdin.buffer.read().decode("utf-8", "surrogateescape")
    else:
        raise OrchError("nothing to send: orch send <worker> <text> (or the text on stdin)")
    if pane is None and (code := on_host(worker, ["send", str(worker), "--", body])) is not None:
        return code
    target = do_send(context(), worker, body, pane=pane)
    took = "it took them" if target.pane.is_agent else "typed into its shell pane"
    print(f"sent {len(body)} characters to {target.address} (pane {target.pane.pane_id}); {took}")
    return 0


def reply(task: str, text: list[str]) -> int:
    from orch.workflow.route import reply as do_reply

    words = list(text or [])
    body = " ".join(words) if words else ("" if sys.stdin.isatty() else sys.stdin.read())
    if (code := on_host(task, ["reply", task, "--", body])) is not None:
        return code
    target = do_reply(context(), task, body)
    print(f"answered {task}: typed into {target.address} (pane {target.pane.pane_id}); the task goes on")
    return 0


def exec_(worker: str | None, command: list[str], timeout: float, pane: str | None) -> int:
    from orch.workflow.route import exec_command

    argv = list(command or [])
    if pane is not None and worker is not None:
        argv.insert(0, worker)
        worker = None
    if pane is None and (code := on_host(worker, ["exec", "-t", str(timeout), str(worker), "--", *argv],
                                         timeout or 3600)) is not None:
        return code
    return exec_command(context(), worker, argv, timeout, pane=pane)


def capture(worker: str | None, lines: int, pane: str | None, colour: bool = False) -> int:
    from orch.workflow.route import capture as do_capture

    args = ["capture", str(worker), "-n", str(lines), *(["--color"] if colour else [])]
    if pane is None and (code := on_host(worker, args)) is not None:
        return code
    sys.stdout.write(do_capture(context(), worker, lines, pane=pane, colour=colour) + "\n")
    return 0


def attach(worker: str | None, pane: str | None) -> None:
    from orch.workflow.route import attach as do_attach

    if pane is None and worker:
        ctx = context()
        from orch.workflow import remote

        row = remote.where(ctx, worker.split(":", 1)[0])
        if row is not None:
            remote.attach(ctx, row, worker)
            return
    do_attach(context(), worker, pane=pane)
