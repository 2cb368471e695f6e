"""Fault points: the moments where the reliability suite (and `make soak`) has orch killed with SIGKILL, to show
that whatever moment a crash hits, nothing is lost, torn or stuck.

A point costs one comparison when nothing is armed. It is armed in a process by ``arm(point, n)`` (the suite arms a
forked pass) or by ``ORCH_FAULT=<point>:<n>`` in its environment (a daemon under test): the process then kills
itself the ``n``-th time it reaches that point; ``*`` is any point.
"""

from __future__ import annotations

import os

POINTS = (
    "inbox.imported",  # messages in the database, their spool files not yet removed
    "inbox.recorded",  # a batch of messages' effects committed, their task files not yet written
    "inbox.applied",  # a batch of messages' effects written to their task files, the messages not yet marked applied
    "task.recorded",  # orch's record of a task changed, the task file not yet written
    "file.written",  # a task file's new copy written, not yet renamed into place
    "spawn.registered",  # a worker's row made, its window not yet created
    "spawn.window",  # a worker's window made and tagged, its task not yet moved
    "deliver.typed",  # a prompt typed, its delivery not yet confirmed
    "job.started",  # a validation job started, the task not yet told
    "review.recorded",  # a review recorded, the task not yet moved to reviewing
    "verdict.bound",  # a verdict bound to its review, the task not yet told
    "worker.lost",  # a worker marked lost, its task not yet told
    "close.windows",  # a closed task's windows killed, its worktree and file not yet handled
    "close.moved",  # a closed task's file moved to done/, its record not yet forgotten
    "land.authorised",  # a train's authorisation recorded, nothing built yet
    "land.built",  # a train's integration commits made, not yet validated
    "land.validated",  # a train's tip validated, the base not yet moved
    "land.moved",  # the base moved to the validated tip, the train not yet recorded as landed
    "land.recorded",  # the train recorded as landed, its members not yet merged
)

_armed: tuple[str, int] | None = None
_hits = 0


def arm(point: str, n: int = 1) -> None:
    global _armed, _hits
    _armed, _hits = (point, n), 0


def _from_env() -> None:
    spec = os.environ.get("ORCH_FAULT")
    if spec:
        name, _, count = spec.partition(":")
        arm(name, int(count or 1))


def point(name: str) -> None:
    """A moment a crash may hit: killed here when armed for it."""
    global _hits
    if _armed is None or (_armed[0] != name and _armed[0] != "*"):
        return
    _hits += 1
    if _hits >= _armed[1]:
        import signal

        os.kill(os.getpid(), signal.SIGKILL)


_from_env()
