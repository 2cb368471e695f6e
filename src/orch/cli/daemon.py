"""Commands about running unattended: run, stop, recover, gc."""

from __future__ import annotations

import os
import sys
import time

from orch.cli.app import context
from orch.cli.render import say


def _say(line: str) -> None:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    sys.stdout.write(f"{stamp} {line}\n")
    sys.stdout.flush()


def run(detach: bool, once: bool) -> None:
    from orch.workflow import daemon

    ctx = context()
    if once:
        from orch.workflow.scan import scan

        lines = scan(ctx).lines()
        say("\n".join(lines) if lines else "nothing to do")
        return
    if detach:
        log = os.path.join(ctx.ws.logs, "daemon.log")
        pid = daemon.detach(ctx.ws, lambda: daemon.Daemon(context(), _say).run(), log)
        say(f"orch daemon running (pid {pid}); log: {log}; `orch stop` ends it")
        return
    daemon.Daemon(ctx, _say).run()


def stop() -> None:
    from orch.workflow import daemon

    pid = daemon.stop(context().ws)
    say(f"orch daemon stopped (pid {pid}); workers keep running")


def recover(task: str | None) -> None:
    from orch.workflow.recover import recover as do_recover

    did = do_recover(context(), task)
    say("\n".join(f"recovered: {d}" for d in did) if did else "nothing to recover: every task in progress has its workers")


def gc(yes: bool) -> None:
    from orch.workflow import gc as do_gc

    ctx = context()
    items = do_gc.find(ctx)
    if not items:
        say("nothing stale")
        return
    for s in items:
        say(f"{s.kind:<9} {s.what}  ({s.why})")
    if not yes:
        say(f"{sum(s.removable for s in items)} removable; `orch gc --yes` removes them")
        return
    for line in do_gc.remove(ctx, items):
        say(line)
