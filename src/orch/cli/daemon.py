"""Commands about running unattended: run, stop, recover, gc."""

from __future__ import annotations

import os
import sys
import time

import typer

from orch.cli.app import app, context
from orch.cli.render import console


def _say(line: str) -> None:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    sys.stdout.write(f"{stamp} {line}\n")
    sys.stdout.flush()


@app.command()
def run(
    detach: bool = typer.Option(False, "--detach", "-d", help="Run in the background; output in .orch/logs/daemon.log."),
    once: bool = typer.Option(False, "--once", help="One reconcile pass and exit (the same as `orch scan`)."),
) -> None:
    """The orchestrator daemon: acts on new or edited task files and on messages as they arrive, passes every
    scan_interval seconds, and ends on SIGTERM/SIGINT leaving the workers running."""
    from orch.workflow import daemon

    ctx = context()
    if once:
        from orch.workflow.scan import scan

        lines = scan(ctx).lines()
        console.print("\n".join(lines) if lines else "nothing to do")
        return
    if detach:
        log = os.path.join(ctx.ws.logs, "daemon.log")
        pid = daemon.detach(ctx.ws, lambda: daemon.Daemon(context(), _say).run(), log)
        console.print(f"orch daemon running (pid {pid}); log: {log}; `orch stop` ends it")
        return
    daemon.Daemon(ctx, _say).run()


@app.command()
def stop() -> None:
    """End the workspace's daemon (SIGTERM; it finishes the pass in hand). Workers keep running."""
    from orch.workflow import daemon

    pid = daemon.stop(context().ws)
    console.print(f"orch daemon stopped (pid {pid}); workers keep running")


@app.command()
def recover(task: str | None = typer.Argument(None, help="Only this task (default: every task in progress).")) -> None:
    """Start again the lost workers of tasks in progress, in their worktrees, resuming the agents' sessions where
    they can."""
    from orch.workflow.recover import recover as do_recover

    did = do_recover(context(), task)
    console.print("\n".join(f"recovered: {d}" for d in did) if did else "nothing to recover: every task in progress has its workers")


@app.command()
def gc(yes: bool = typer.Option(False, "--yes", "-y", help="Remove what is listed (default: only list it).")) -> None:
    """List what is stale (orphan windows, dead panes, worktrees with no task, task branches merged into the
    base); remove it with --yes. Work that is not merged or not committed is never removed."""
    from orch.workflow import gc as do_gc

    ctx = context()
    items = do_gc.find(ctx)
    if not items:
        console.print("nothing stale")
        return
    for s in items:
        console.print(f"{s.kind:<9} {s.what}  ({s.why})")
    if not yes:
        console.print(f"{sum(s.removable for s in items)} removable; `orch gc --yes` removes them")
        return
    for line in do_gc.remove(ctx, items):
        console.print(line)
