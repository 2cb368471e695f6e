"""`orch -` and `orch message` run on the hot path (orch/hot.py) before this CLI loads; these entries exist so
that `orch --help` lists them."""

from __future__ import annotations

import typer

from orch.cli.app import app

HELP = (
    "Record a message for a task: `orch - \"task-<slug>: <text>\"` (inside a worker the task is known). "
    "Recognised: needs input: <q> | blocked: <why> | done: <summary> | worktree <path> | PR created <url>."
)


@app.command("message", help=HELP, context_settings={"ignore_unknown_options": True})
def message(text: list[str] = typer.Argument(None)) -> None:
    from orch.hot import message as hot_message

    raise typer.Exit(hot_message(list(text or [])))


@app.command("-", help=HELP + " Same as `orch message`.", context_settings={"ignore_unknown_options": True})
def dash(text: list[str] = typer.Argument(None)) -> None:
    from orch.hot import message as hot_message

    raise typer.Exit(hot_message(list(text or [])))


@app.command(
    "verdict",
    help="The reviewer's answer: `orch verdict approve|request-changes [--task SLUG]`, findings on stdin, one per "
    "line: <blocker|major|minor|note>: [path[:line]] <text>. Bound to the sha under review.",
    context_settings={"ignore_unknown_options": True},
)
def verdict(args: list[str] = typer.Argument(None)) -> None:
    from orch.hot import verdict as hot_verdict

    raise typer.Exit(hot_verdict(list(args or [])))


@app.command(
    "hook",
    help="Called by an agent's hooks: `orch hook <event> [payload]` (payload JSON on stdin or as the last argument). "
    "Updates the worker's state; always exits 0 and never blocks the agent.",
    context_settings={"ignore_unknown_options": True},
)
def hook(args: list[str] = typer.Argument(None)) -> None:
    from orch.hot import hook as hot_hook

    raise typer.Exit(hot_hook(list(args or [])))
