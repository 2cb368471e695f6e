"""Commands that reach a worker's window: send, exec, capture, attach. The worker address is the only target."""

from __future__ import annotations

import sys

from orch.cli.app import context
from orch.errors import OrchError


def send(worker: str | None, text: list[str], pane: str | None) -> None:
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
    target = do_send(context(), worker, body, pane=pane)
    took = "it took them" if target.pane.is_agent else "typed into its shell pane"
    print(f"sent {len(body)} characters to {target.address} (pane {target.pane.pane_id}); {took}")


def reply(task: str, text: list[str]) -> None:
    from orch.workflow.route import reply as do_reply

    words = list(text or [])
    body = " ".join(words) if words else ("" if sys.stdin.isatty() else sys.stdin.read())
    target = do_reply(context(), task, body)
    print(f"answered {task}: typed into {target.address} (pane {target.pane.pane_id}); the task goes on")


def exec_(worker: str | None, command: list[str], timeout: float, pane: str | None) -> int:
    from orch.workflow.route import exec_command

    argv = list(command or [])
    if pane is not None and worker is not None:
        argv.insert(0, worker)
        worker = None
    return exec_command(context(), worker, argv, timeout, pane=pane)


def capture(worker: str | None, lines: int, pane: str | None) -> None:
    from orch.workflow.route import capture as do_capture

    sys.stdout.write(do_capture(context(), worker, lines, pane=pane) + "\n")


def attach(worker: str | None, pane: str | None) -> None:
    from orch.workflow.route import attach as do_attach

    do_attach(context(), worker, pane=pane)
