"""Applying the inbox: spooled messages are imported into the database, checked, and applied to task files.

A message is marked applied only after its effect is written; re-applying one (after a crash between the two
writes) finds its status line already in the task file and changes nothing.
"""

from __future__ import annotations

import hashlib
import os

from orch import inbox as spool
from orch.errors import OrchError
from orch.locks import hold
from orch.store import Message
from orch.workflow import tasks as T
from orch.workflow.context import Ctx
from orch.workflow.messages import interpret


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest() if token else ""


def import_spool(ctx: Ctx) -> int:
    """Move spooled message files into the database (idempotent by uid); returns how many were new."""
    paths = spool.pending(ctx.ws)
    if not paths:
        return 0
    records, done, bad = [], [], []
    for path in paths:
        record = spool.read(path)
        if record is None:
            bad.append(path)
            continue
        record["token_hash"] = token_hash(str(record.pop("token", "") or ""))
        records.append(record)
        done.append(path)
    added = ctx.store.import_messages(records) if records else 0
    for record in records:
        if record.get("status") == "refused":
            ctx.event("refused", record.get("note", ""), task=str(record.get("task") or ""), worker=str(record.get("worker") or ""))
    for path in done:
        _unlink(path)
    for path in bad:
        aside = ctx.ws.path("inbox", "bad")
        os.makedirs(aside, mode=0o700, exist_ok=True)
        os.replace(path, os.path.join(aside, os.path.basename(path)))
        ctx.event("inbox", f"unreadable message file set aside: {os.path.basename(path)}")
    return added


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def apply_pending(ctx: Ctx) -> int:
    """Apply every pending message in arrival order; returns how many were applied."""
    applied = 0
    for msg in ctx.store.pending_messages():
        if apply_one(ctx, msg):
            applied += 1
    return applied


def apply_one(ctx: Ctx, msg: Message) -> bool:
    store = ctx.store
    sender = None
    if msg.token_hash:
        sender = store.worker_by_token(msg.token_hash)
        if sender is None:
            store.finish_message(msg.id, "refused", "unknown worker token")
            ctx.event("refused", f"message with an unknown worker token: {msg.text[:200]}", task=msg.task)
            return False
        if sender.task != msg.task:
            note = f"worker of task {sender.task} may not speak for task {msg.task}"
            store.finish_message(msg.id, "refused", note)
            ctx.event("refused", note, task=msg.task, worker=sender.id)
            return False
    path = T.task_path(ctx, msg.task)
    if not os.path.exists(path):
        closed = os.path.exists(os.path.join(ctx.cfg.done_path, msg.task + ".md"))
        note = "task is closed" if closed else "no such task file"
        store.finish_message(msg.id, "unapplied", note)
        ctx.event("inbox", f"message not applied ({note}): {msg.text[:200]}", task=msg.task)
        return False
    try:
        task = T.read_task(path)
        effect = interpret(msg.text, task.state, from_worker=sender is not None)
        who = sender.role if sender is not None else "user"
        fields = dict(effect.fields)
        if effect.state:
            fields["state"] = effect.state
        T.record(ctx, msg.task, status=f"{who}: {effect.status}", at=msg.at, meta=effect.meta, **fields)
    except OrchError as exc:
        store.finish_message(msg.id, "failed", str(exc))
        ctx.event("inbox", f"message not applied: {exc}", task=msg.task)
        return False
    store.finish_message(msg.id, "applied")
    return True


def drain_locked(ctx: Ctx) -> int:
    """Import and apply everything in the inbox; the caller holds the inbox lock."""
    import_spool(ctx)
    return apply_pending(ctx)


def drain(ctx: Ctx, wait: float | None = 10) -> int:
    """Import and apply everything in the inbox under the inbox lock. Returns messages applied."""
    applied = 0
    while True:
        with hold(ctx.lock_path("inbox"), wait=wait) as got:
            if not got:
                return applied
            applied += drain_locked(ctx)
        # a writer that found the lock busy relies on us looking again after we let go
        if not spool.pending(ctx.ws):
            return applied
        wait = 0
