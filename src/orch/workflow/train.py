"""A merge train's record and its pure decisions.

A train is the person's authorisation to land named tasks, in order, on the base: ``.orch/trains/<op>.json``,
written atomically at every step, so that a train cut short (``kill -9``, a reboot) is resumed or cleaned up by its
operation id. The op id is made from the base and the members at their approved shas: asking again for the same
train is harmless (it resumes it, or says it landed).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable

from orch.files import atomic_write
from orch.record import dataclass, field
from orch.workflow.context import Ctx

FINISHED = ("landed", "failed", "handed")  # handed: given to the forge's auto-merge ([land] via = "forge")


@dataclass
class Train:
    op: str
    base: str
    members: list[str]  # in the order the person gave, those still in the train
    approved: dict[str, str]  # member -> the sha its review approved
    method: str = "merge"
    state: str = "authorised"  # authorised | building | validating | landing | landed | failed
    base_sha: str = ""  # the base the current build started from
    tip: str = ""  # the integration commit being validated or landed
    validated: list[str] = field(default_factory=list)  # tips whose validation passed
    out: dict[str, str] = field(default_factory=dict)  # member taken out -> why
    carried: dict[str, str] = field(default_factory=dict)  # member rebased -> the range-diff that proves it the same
    validation: list[dict] = field(default_factory=list)  # the runs at the landed tip
    log: list[str] = field(default_factory=list)
    created: float = 0.0
    finished: float = 0.0

    def say(self, line: str) -> None:
        self.log.append(f"{time.strftime('%H:%M:%S')} {line}")

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("op", "base", "members", "approved", "method", "state", "base_sha",
                                              "tip", "validated", "out", "carried", "validation", "log", "created",
                                              "finished")}


def op_id(base: str, members: list[str], approved: dict[str, str]) -> str:
    text = "\n".join([base, *(f"{m} {approved[m]}" for m in members)])
    return "L" + hashlib.sha1(text.encode()).hexdigest()[:10]  # noqa: S324 - a name, not a secret


def folder(ctx: Ctx) -> str:
    return ctx.ws.path("trains")


def path(ctx: Ctx, op: str) -> str:
    return os.path.join(folder(ctx), f"{op}.json")


def scratch_path(ctx: Ctx, op: str) -> str:
    return os.path.join(folder(ctx), op)


def save(ctx: Ctx, train: Train) -> None:
    os.makedirs(folder(ctx), exist_ok=True)
    atomic_write(path(ctx, train.op), (json.dumps(train.as_dict(), indent=1) + "\n").encode("utf-8"), mode=0o644)


def load(ctx: Ctx, op: str) -> Train | None:
    try:
        with open(path(ctx, op), encoding="utf-8") as fh:
            return Train(**json.load(fh))
    except (OSError, ValueError, TypeError):
        return None


def unfinished(ctx: Ctx) -> list[Train]:
    """Trains cut short (by a crash, or a base that could not be moved), oldest first."""
    try:
        names = sorted(n for n in os.listdir(folder(ctx)) if n.endswith(".json"))
    except FileNotFoundError:
        return []
    found = [t for n in names if (t := load(ctx, n[:-5])) is not None and t.state not in FINISHED]
    return sorted(found, key=lambda t: t.created)


def first_failing(tips: list[tuple[str, str]], fails: Callable[[str], bool], said: Callable[[str], None]) -> str:
    """The member whose merge first makes the train fail: the shortest failing prefix, by bisection over the
    integration commits after each member (``tips``: (member, tip after it), the last one known to fail). Pure
    but for ``fails``, which validates a tip."""
    lo, hi = 0, len(tips) - 1  # the answer is in tips[lo..hi]; tips[hi] fails
    while lo < hi:
        mid = (lo + hi) // 2
        member, tip = tips[mid]
        bad = fails(tip)
        said(f"bisect: the train up to {member} ({tip[:12]}) {'fails' if bad else 'passes'}")
        if bad:
            hi = mid
        else:
            lo = mid + 1
    return tips[lo][0]


def union(commands: list[list[str]]) -> list[str]:
    """The members' validation commands, each once, in the members' order."""
    seen: list[str] = []
    for group in commands:
        seen += [c for c in group if c not in seen]
    return seen
