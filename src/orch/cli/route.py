"""Commands that reach a worker's window: send, exec, capture, attach. The worker address is the only target."""

from __future__ import annotations

import sys

import typer

from orch.cli.app import app, context
from orch.errors import OrchError

WORKER_HELP = "Worker address: <task> (its coder), <task>:<role>, or <task>:<role>.<n> for pane n of that window."
PANE_HELP = "Explicit tmux pane id (e.g. %3) instead of a worker address; then give no worker."


@app.command()
def send(
    worker: str | None = typer.Argument(None, help=WORKER_HELP),
    text: list[str] | None = typer.Argument(None, help="The text (default: read from stdin)."),
    pane: str | None = typer.Option(None, "--pane", help=PANE_HELP),
) -> None:
    """Type text into a worker's agent (bracketed paste from a named buffer, then Enter)."""
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
    print(f"sent {len(body)} characters to {target.address} (pane {target.pane.pane_id}); it took them")


@app.command()
def reply(
    task: str = typer.Argument(..., help="The task whose coder asked a question."),
    text: list[str] | None = typer.Argument(None, help="Your answer (default: read from stdin)."),
) -> None:
    """Answer a coder's `needs input` question: typed into the coder, and the task resumes."""
    from orch.workflow.route import reply as do_reply

    words = list(text or [])
    body = " ".join(words) if words else ("" if sys.stdin.isatty() else sys.stdin.read())
    target = do_reply(context(), task, body)
    print(f"answered {task}: typed into {target.address} (pane {target.pane.pane_id}); the task goes on")


@app.command("exec")
def exec_(
    worker: str | None = typer.Argument(None, help=WORKER_HELP),
    command: list[str] | None = typer.Argument(None, help="The command and its arguments, after --."),
    timeout: float = typer.Option(600.0, "--timeout", "-t", help="Seconds before the command is stopped (exit 124); 0 = none."),
    pane: str | None = typer.Option(None, "--pane", help=PANE_HELP),
) -> None:
    """Run a command in the shell pane of a worker's window (never typed into the agent); exit with its code."""
    from orch.workflow.route import exec_command

    argv = list(command or [])
    if pane is not None and worker is not None:
        argv.insert(0, worker)
        worker = None
    code = exec_command(context(), worker, argv, timeout, pane=pane)
    raise typer.Exit(code)


@app.command()
def capture(
    worker: str | None = typer.Argument(None, help=WORKER_HELP),
    lines: int = typer.Option(40, "-n", "--lines", help="How many lines."),
    pane: str | None = typer.Option(None, "--pane", help=PANE_HELP),
) -> None:
    """Print the last lines of a worker's agent pane."""
    from orch.workflow.route import capture as do_capture

    if lines < 1:
        raise OrchError("-n must be at least 1")
    sys.stdout.write(do_capture(context(), worker, lines, pane=pane) + "\n")


@app.command()
def attach(
    worker: str | None = typer.Argument(None, help=WORKER_HELP),
    pane: str | None = typer.Option(None, "--pane", help=PANE_HELP),
) -> None:
    """Show a worker's window: attach to orch's tmux server (or switch to it when already inside)."""
    from orch.workflow.route import attach as do_attach

    do_attach(context(), worker, pane=pane)
