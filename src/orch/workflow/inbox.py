"""Applying the inbox: spooled messages are imported into the database, checked, and applied to task files.

Messages are applied in batches: their effects on orch's record, then each task file written once, then their marks.
A message is marked applied only after its effect is in its task file; re-applying one (after a crash before its
mark) finds its status line already in orch's record and changes nothing.
"""

from __future__ import annotations

import os
import time

from orch import agents, faults, taskfile
from orch import inbox as spool
from orch.agents.base import Agent
from orch.errors import OrchError
from orch.lifecycle import Actor, TaskState, WorkerEvent, WorkerState
from orch.locks import hold
from orch.slug import is_valid
from orch.store import Message, TaskRow, Worker
from orch.workflow import tasks as T
from orch.workflow import workers
from orch.workflow.context import Ctx


def token_hash(token: str) -> str:
    if not token:
        return ""
    import hashlib

    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


GRACE = 10.0  # seconds after a worker ended in which what it wrote just before is still taken under its token


def _identify(ctx: Ctx, record: dict, arrived: float = 0.0) -> None:
    """Who a record is from: a worker's host stamps the records it hands on from the worker's spool (``via``, the
    sandboxed workers' only way to orch); a record without a stamp carries a worker token (an unsandboxed worker's
    environment) or nothing (the person). Whatever the record says of its worker and role is replaced."""
    via = str(record.pop("via", "") or "")
    token = str(record.pop("token", "") or "")
    if via:
        sender = ctx.store.worker(via)
        record["token_hash"] = sender.token_hash if sender is not None else "unknown worker " + via
    else:
        record["token_hash"] = token_hash(token)
        sender = ctx.store.worker_by_token(record["token_hash"]) if token else None
        if sender is not None and sender.ended_at and arrived > sender.ended_at + GRACE:  # revoked with its worker
            record.update(status="refused", note=f"the token of {sender.id}, which has ended, is no longer valid")
            record["token_hash"], sender = "revoked " + record["token_hash"], None
    record["worker"] = sender.id if sender is not None else ""
    record["role"] = sender.role if sender is not None else ""
    task = str(record.get("task") or "")
    if task and not is_valid(task):  # never a path: refused, kept for the log
        record.update(task="", status="refused", note=f"not a task name: {task[:100]!r}")


def import_spool(ctx: Ctx) -> int:
    """Move spooled message files into the database (idempotent by uid); returns how many were new."""
    paths = spool.pending(ctx.ws)
    for path in spool.stale_tmp(ctx.ws):
        _unlink(path)
    if not paths:
        return 0
    records, done = [], []
    bad: list[tuple[str, str]] = []
    for path in paths:
        record, why = spool.read(path)
        if record is None:
            bad.append((path, why))
            continue
        try:
            arrived = os.stat(path).st_ctime  # when it was written (a writer can set the times it shows, not this)
        except OSError:
            arrived = time.time()
        _identify(ctx, record, arrived)
        records.append(record)
        done.append(path)
    added, refused = ctx.store.import_messages(records) if records else (0, [])
    refused_uids = {r["uid"] for r in refused}
    for record in records:
        if record["uid"] in refused_uids:
            continue
        if record.get("status") == "refused":
            ctx.event("refused", record.get("note", ""), task=str(record.get("task") or ""), worker=str(record.get("worker") or ""))
    faults.point("inbox.imported")
    bad += [(p, "the database refused it") for p, r in zip(done, records, strict=True) if r["uid"] in refused_uids]
    done = [p for p, r in zip(done, records, strict=True) if r["uid"] not in refused_uids]
    for path in done:
        _unlink(path)
    for path, why in bad:
        quarantine(ctx, path, why)
    return added


def quarantine(ctx: Ctx, path: str, why: str) -> None:
    """Move something that is not a message out of the spool, unopened (``inbox/bad``), and say so in the log."""
    aside = ctx.ws.path("inbox", "bad")
    os.makedirs(aside, mode=0o700, exist_ok=True)
    name = os.path.basename(path)
    target = os.path.join(aside, name)
    if os.path.lexists(target):
        target = os.path.join(aside, f"{name}.{os.urandom(3).hex()}")
    try:
        os.replace(path, target)
    except OSError as exc:
        ctx.event("inbox", f"cannot set {name!r} aside ({exc.strerror or exc}): remove it from {os.path.dirname(path)}")
        return
    ctx.event("inbox", f"set aside {name!r} ({why}) in {aside}")


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


BATCH = 400  # messages applied in one transaction (a few tenths of a second: other writers wait that long at most)


def apply_pending(ctx: Ctx) -> int:
    """Apply every pending message in arrival order, in batches; returns how many were applied."""
    applied = 0
    pending = ctx.store.pending_messages()
    waiting: set[str] = set()  # tasks whose message waits: their later messages wait behind it, batch after batch
    for start in range(0, len(pending), BATCH):
        if ctx.stopping:  # the daemon is asked to stop: the rest stays pending (durable) for the next pass
            break
        applied += apply_batch(ctx, pending[start:start + BATCH], waiting)
    return applied


def apply_batch(ctx: Ctx, msgs: list[Message], skipped: set[str] | None = None) -> int:
    """Messages applied together, in three steps, each of which a crash may cut short: their effects on orch's
    record (one transaction; each message a savepoint of it), then each task file they changed written once from
    the record, then their marks (one transaction). A crash before the marks leaves the messages pending, and
    applying them again changes nothing (a status line is kept once per message). The tasks' locks are taken
    first, before the database: a task whose lock another orch process holds keeps its messages for a later pass,
    in their order."""
    from contextlib import ExitStack

    slugs = sorted({m.task for m in msgs if m.task and is_valid(m.task)})
    applied, failed = 0, None
    skipped = set() if skipped is None else skipped
    with ExitStack() as stack:
        held = {slug for slug in slugs if stack.enter_context(hold(ctx.lock_path("task-" + slug), wait=10))}
        batch = ctx.batch = T.Batch(held)
        try:
            with ctx.store.batch():
                for msg in msgs:
                    if ctx.stopping:
                        break
                    if msg.task in skipped or (msg.task in slugs and msg.task not in held):
                        skipped.add(msg.task)  # its task's lock is busy, or an earlier message of its task waits:
                        continue  # kept, in order, for a later pass
                    marked = len(batch.marks)
                    try:
                        with ctx.store.tx():
                            if apply_one(ctx, msg):
                                applied += 1
                        if len(batch.marks) == marked and msg.task:
                            skipped.add(msg.task)  # it waits: the task's later messages wait behind it
                    except Exception as exc:  # noqa: BLE001 - the messages before it are kept; raised below
                        failed = exc
                        break
            faults.point("inbox.recorded")
            ctx.batch = None
            T.render_batch(ctx, batch)
        finally:
            ctx.batch = None
    faults.point("inbox.applied")
    if batch.marks:
        ctx.store.finish_messages(batch.marks)
    if failed is not None:
        raise failed
    return applied


def _finish(ctx: Ctx, msg: Message, status: str, note: str = "") -> None:
    """A message's fate: recorded with its batch's marks, after its effect is in its task file."""
    if ctx.batch is not None:
        ctx.batch.marks.append((msg.id, status, note))
    else:
        ctx.store.finish_message(msg.id, status, note)


def apply_one(ctx: Ctx, msg: Message) -> bool:
    store = ctx.store
    sender = None
    if msg.token_hash:
        sender = store.worker_by_token(msg.token_hash)
        if sender is None:
            _finish(ctx, msg, "refused", "unknown worker token")
            ctx.event("refused", f"message with an unknown worker token: {msg.text[:200]}", task=msg.task)
            return False
        if sender.task != msg.task:
            note = f"worker of task {sender.task} may not speak for task {msg.task}"
            _finish(ctx, msg, "refused", note)
            ctx.event("refused", note, task=msg.task, worker=sender.id)
            return False
    match msg.kind, sender:
        case "job", None:  # a background job finished: the pass that this wakes collects it
            _finish(ctx, msg, "applied", "a job finished")
            return False
        case "hook", None:
            _finish(ctx, msg, "refused", "a hook without a worker token")
            return False
        case "hook", Worker():
            apply_hook(ctx, msg, sender)
            _finish(ctx, msg, "applied")
            return True
        case "verdict", Worker(role=role) if role != "reviewer":
            note = f"a {role} may not give verdicts"
            _finish(ctx, msg, "refused", note)
            ctx.event("refused", note, task=msg.task, worker=sender.id)
            return False
    status, note = apply_to_task(ctx, msg, sender)
    if status == "pending":  # it waits, and is tried again on every pass: said once, not every time
        if note != msg.note:
            store.note_message(msg.id, note)
            ctx.event("inbox", f"message waits ({note}): {msg.text[:200]}", task=msg.task)
        return False
    _finish(ctx, msg, status, note)
    return status == "applied"


def task_record(ctx: Ctx, slug: str) -> TaskRow | str:
    """orch's record of the task a message is for; else why the message cannot be applied now ("pending: ...")
    or ever ("closed")."""
    row = ctx.store.task_row(slug)
    path = T.task_path(ctx, slug)
    if row is not None and row.state == TaskState.DONE and not os.path.exists(path):
        return "closed"  # its close was cut short before the record was forgotten
    if row is not None and row.state != TaskState.DONE:
        return row  # the record is all a message needs: the task file is written when it can be
    if not os.path.exists(path):
        if os.path.exists(os.path.join(ctx.cfg.done_path, slug + ".md")):
            return "closed"
        return "pending: there is no task file for it"
    try:
        _, doc = taskfile.read(path)
    except (OSError, OrchError) as exc:
        return f"pending: the task file cannot be read now ({exc})"
    return T.record_from_doc(slug, doc, T.branch_of(ctx, slug))[0]


def apply_to_task(ctx: Ctx, msg: Message, sender: Worker | None) -> tuple[str, str]:
    """A message's effect on its task; returns the message's status ("applied", "unapplied" for good, or "pending":
    tried again later) and a note. A message is applied to orch's record of the task even while the task file is
    being edited, broken or briefly absent; the file gets it when it can be written again."""
    if msg.uid and ctx.store.logged(msg.task, msg.uid):  # applied before a crash cut its mark short: its effect
        return "applied", ""  # is in the record already (a move is never made twice, whatever the state is now)
    found = task_record(ctx, msg.task)
    if found == "closed":
        ctx.event("inbox", f"message not applied (task is closed): {msg.text[:200]}", task=msg.task)
        return "unapplied", "task is closed"
    if isinstance(found, str):
        return "pending", found.removeprefix("pending: ")
    try:
        match msg.kind:
            case "verdict":
                apply_verdict(ctx, found, msg, sender.id if sender is not None else "user")
            case _:
                apply_message(ctx, found, msg, sender)
    except OrchError as exc:  # e.g. the task's lock held too long: tried again later
        return "pending", str(exc)
    return "applied", ""


def apply_message(ctx: Ctx, task: TaskRow, msg: Message, sender: Worker | None) -> None:
    """A message's meaning for the task in the state it is in (``messages.interpret``): a move, or a note."""
    from orch.workflow.messages import interpret

    effect = interpret(msg.text, task.state, from_worker=sender is not None)
    if sender is not None and effect.meta.get("worktree"):  # where a task's worktree is, orch decides (it made it),
        effect.meta = {k: v for k, v in effect.meta.items() if k != "worktree"}  # never a worker: only noted
        effect.status += " (not taken: a worker does not move its task's worktree)"
    who = sender.role if sender is not None else "user"
    status = f"{who}: {shown(ctx, msg, effect.status)}"
    if effect.move is None:
        T.record(ctx, msg.task, status=status, at=msg.at, meta=effect.meta, summary=effect.fields, uid=msg.uid)
        return
    m = effect.move
    if not T.move(ctx, msg.task, m.to, m.event, m.actor, status=status, at=msg.at, meta=effect.meta,
                  summary=effect.fields, uid=msg.uid):
        # the task moved on between reading it and writing (the refusal is in the log): the message is a note
        row = ctx.store.task_row(msg.task)
        now = row.state if row is not None else "?"
        T.record(ctx, msg.task, status=f"{status} (noted; not a move for a {now} task)", at=msg.at, uid=msg.uid)


def shown(ctx: Ctx, msg: Message, text: str) -> str:
    """A message's text as its status line shows it: whole, or (a long one) its start and where the whole text is
    kept (``.orch/messages/<uid>.txt``)."""
    if len(text) <= T.STATUS_LINE_MAX - 200:
        return text
    folder = ctx.ws.path("messages")
    os.makedirs(folder, mode=0o700, exist_ok=True)
    path = os.path.join(folder, f"{msg.uid}.txt")
    if not os.path.exists(path):
        from orch.files import atomic_write

        atomic_write(path, msg.text.encode("utf-8", "surrogateescape"), mode=0o600)
    head = T.taskfile.one_line(text)[: T.STATUS_LINE_MAX - 400]
    return f"{head} … ({len(msg.text)} characters; the whole message: {os.path.relpath(path, ctx.ws.root)})"


def apply_hook(ctx: Ctx, msg: Message, worker: Worker) -> None:
    """An agent's hook: the worker's state (hooks are the first source of truth), and its agent session id."""
    from orch.agents.hooks import parse_payload

    event, _, raw = msg.text.partition("\n")
    payload = parse_payload(raw)
    agent = agent_of(ctx, worker)
    if agent.side_thread(event, payload):
        return
    changes: dict[str, object] = {"hook_at": msg.at}
    session = agent.hook_session(payload)
    if session and session != worker.agent_session:
        changes["agent_session"] = session
    new = agent.hook_state(event, payload)
    if new and new != worker.state:
        changes.update(state_since=msg.at, screen_state="", screen_count=0)
        if not workers.move(ctx, worker, WorkerState(new), WorkerEvent.HOOK, Actor.WORKER, f"hook {event}", **changes):
            ctx.store.update_worker(worker.id, hook_at=msg.at)  # an ended worker's late hook: noted, no move
    else:
        ctx.store.update_worker(worker.id, **changes)
    if worker.role == "reviewer" and new == "idle":
        _verdict_from_final_message(ctx, msg, worker, agent.final_message(payload))


def agent_of(ctx: Ctx, worker: Worker) -> Agent:
    """The agent module of a worker's profile (the generic one when its profile is gone from the config)."""
    from orch import agents

    try:
        return agents.agent(ctx.cfg.profile(worker.agent).kind)
    except OrchError:
        return agents.agent("generic")


def transcript_turn(ctx: Ctx, worker: Worker, agent: Agent) -> None:
    """For an agent that cannot run orch's commands (Aider): at the end of its turn, its report (coder) or verdict
    (reviewer) is read from its final message in its transcript, past what orch has read already (so a turn is
    never applied twice)."""
    import time

    from orch.agents.hooks import report_from_final_message

    # the turn's identity: where it starts in the transcript (a turn read twice is applied once)
    msg = Message(id=0, uid=f"{worker.id}@{worker.transcript_offset}", at=time.time(), kind="message",
                  task=worker.task, worker=worker.id, role=worker.role, token_hash=worker.token_hash, text="",
                  status="", note="", applied_at=None)
    turn = agent.transcript_turn(worker.agent_session, worker.transcript_offset)
    if turn is None:
        ctx.event("hook", f"{worker.address}: cannot read the agent's transcript {worker.agent_session}",
                  task=worker.task, worker=worker.id)
        return
    ctx.store.update_worker(worker.id, transcript_offset=turn.read_to)
    final = turn.final
    if worker.role == "reviewer":
        _verdict_from_final_message(ctx, msg, worker, final)
        return
    report = report_from_final_message(final)
    if report:
        apply_to_task(ctx, Message(**{**msg.__dict__, "kind": "message", "text": report}), worker)


def _verdict_from_final_message(ctx: Ctx, msg: Message, worker: Worker, text: str) -> None:
    """A reviewer that could not run `orch verdict` (a read-only sandbox) ends its turn with a verdict block."""
    from orch.verdicts import format_finding, from_final_message

    found = from_final_message(text) if text else None
    if found is None or not any(r.status == "pending" for r in ctx.store.reviews(worker.task)):
        return
    decision, findings = found
    body = "\n".join(format_finding(f, brackets=True) for f in findings)
    row = ctx.store.task_row(worker.task)
    if row is not None:
        synthetic = Message(**{**msg.__dict__, "kind": "verdict", "text": decision + "\n" + body})
        apply_verdict(ctx, row, synthetic, worker.id)


def apply_verdict(ctx: Ctx, task: TaskRow, msg: Message, reviewer: str) -> None:
    """Bind a verdict to the review in progress: counted only if the branch is still at the sha reviewed and the
    worktree is unchanged since the review started; otherwise kept in the history as stale or invalidated."""
    from orch import git
    from orch.verdicts import parse_findings, summary

    decision, _, body = msg.text.partition("\n")
    findings = parse_findings(body)
    faults.point("verdict.bound")
    pending = [r for r in ctx.store.reviews(task.slug) if r.status == "pending"]
    line = summary(decision, findings)
    if not pending:
        T.record(ctx, task.slug, status=f"branch review: {line} — ignored, no review was in progress", at=msg.at,
                 uid=msg.uid)
        return
    review = pending[-1]
    worktree = task.meta.get("worktree") or os.path.join(ctx.cfg.worktree_path, task.slug)
    tree_after = (git.unchanged_since(worktree, review.tree_before, agents.own_files()) if os.path.isdir(worktree)
                  else "")
    head = git.head(worktree) if os.path.isdir(worktree) else None
    if tree_after != review.tree_before:
        status, note = "invalidated", ("the worktree (its files, ignored files, or the repository's config or "
                                       "hooks) changed during the review")
    elif head != review.sha:
        status, note = "stale", f"the branch moved to {str(head)[:12]} during the review"
    else:
        status, note = "counted", ""
    ctx.store.update_review(
        review.id, decision=decision, findings=findings, tree_after=tree_after, status=status, note=note,
        answered_at=msg.at, reviewer=review.reviewer or reviewer,
    )
    text = f"branch review: {line} on {review.sha[:12]}" + (f" — not counted: {note}" if note else "")
    T.record(ctx, task.slug, status=f"reviewer: {text}", at=msg.at, branch_review=f"{line} on {review.sha[:12]}",
             uid=msg.uid)


def drain_locked(ctx: Ctx) -> int:
    """Import and apply everything in the inbox; the caller holds the inbox lock."""
    import_spool(ctx)
    return apply_pending(ctx)


def drain(ctx: Ctx, wait: float | None = 10) -> int:
    """Import and apply everything in the inbox under the inbox lock. Returns messages applied."""
    applied = 0
    for _ in range(100):  # bounded: a file that cannot even be set aside must not keep us here
        with hold(ctx.lock_path("inbox"), wait=wait) as got:
            if not got:
                return applied
            applied += drain_locked(ctx)
        # a writer that found the lock busy relies on us looking again after we let go
        if not spool.pending(ctx.ws) or ctx.stopping:
            return applied
        wait = 0
    return applied
