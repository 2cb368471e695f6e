"""Workers' states: the one way a worker's state changes (``move``), checked against the lifecycle table.

The registry row is updated by compare and swap on the state it was read in, so that a decision made on a stale
reading never overwrites what another process wrote meanwhile: a screen reading taken before a hook was applied
is dropped (the next reading decides again). A hook is the agent itself speaking, so it is applied over whatever
the row holds now, when the table allows that.
"""

from __future__ import annotations

from orch.lifecycle import Actor, Refused, WorkerEvent, WorkerState, check_worker
from orch.store import Worker
from orch.workflow.context import Ctx


def move(ctx: Ctx, worker: Worker, to: WorkerState, event: WorkerEvent, actor: Actor, why: str = "",
         **changes: object) -> bool:
    """Move ``worker`` to ``to`` (with other column ``changes``); returns True when it is in ``to`` afterwards. A
    move the table refuses is logged and not made; staying in the same state only writes ``changes``."""
    current: Worker | None = worker
    for _ in range(5 if event == WorkerEvent.HOOK else 1):
        if current is None:
            return False
        try:
            check_worker(current.state, to, event, actor, subject=f"worker {current.address}:")
        except Refused as exc:
            ctx.event("refused", str(exc), task=current.task, worker=current.id)
            return False
        values = dict(changes)
        if to != current.state:
            values["state"] = to.value
        if not values:
            return True
        if ctx.store.swap_worker(current.id, current.state, values):
            if to != current.state:
                ctx.event("state", f"{current.address}: {current.state} -> {to} ({why or event.value})",
                          task=current.task, worker=current.id)
            worker.state = to.value
            return True
        current = ctx.store.worker(worker.id)  # moved meanwhile by another process: decide again on what it is now
    return False
