"""`orch close`: only when the user asks. Save screens, kill the session, remove the worktree, file the task."""

from __future__ import annotations

import os
import time

from orch import faults, git
from orch.errors import OrchError
from orch.files import atomic_write
from orch.lifecycle import Actor, TaskEvent, TaskState, WorkerEvent, WorkerState, allowed_task
from orch.locks import hold
from orch.record import dataclass, field
from orch.workflow import inbox, jobs, sandboxing, workers
from orch.workflow import tasks as T
from orch.workflow.context import Ctx


@dataclass
class Closed:
    slug: str
    screens: list[str] = field(default_factory=list)
    worktree_removed: str | None = None
    worktree_kept: str | None = None  # a worktree orch did not make: left in place
    branch: str | None = None
    branch_deleted: bool = False
    moved_to: str = ""
    host: str = ""  # a task on a host: what became of its copy there


def close(ctx: Ctx, slug: str, force: bool = False, delete_branch: bool = False) -> Closed:
    with hold(ctx.lock_path("scan"), wait=60) as got:
        if not got:
            raise OrchError("another orch scan is running (lock .orch/locks/scan.lock); try again shortly")
        inbox.drain(ctx)
        task = T.get(ctx, slug)
        if not allowed_task(task.state, TaskState.DONE, TaskEvent.CLOSE, Actor.PERSON):  # checked before anything goes
            raise OrchError(f"task {slug!r} cannot be closed: its state line reads {task.state!r}, which orch did not "
                            "write; put back `state: <one of the task states>` in its summary and close it again")
        result = Closed(slug)
        sandboxing.sync_one(ctx, slug)  # its coder's last commits onto the branch, before the worktree is judged
        worktree = task.meta.get("worktree") or os.path.join(ctx.cfg.worktree_path, slug)
        branch = task.meta.get("branch") or ctx.cfg.branch_prefix + slug
        is_worktree = any(os.path.realpath(w.path) == os.path.realpath(worktree) for w in git.worktrees(ctx.ws.root))
        ours = ctx.store.made("worktree", os.path.realpath(worktree))  # orch removes only what it made
        if delete_branch and git.branch_exists(ctx.ws.root, branch) and not ctx.store.made("branch", branch):
            raise OrchError(f"branch {branch} was not made by orch (it existed before the task): orch does not delete "
                            f"it; close without --delete-branch, and delete it yourself if you mean to")
        folder_gone = is_worktree and not os.path.isdir(worktree)
        if is_worktree and ours and not force and not folder_gone:
            dirty = git.status_porcelain(worktree)
            if dirty:
                raise OrchError(
                    f"{worktree} has {len(dirty)} uncommitted change(s) (first: {dirty[0].strip()}); "
                    f"commit them, or run `orch close {slug} --force` to discard them"
                )
        if ctx.cfg.cluster.address:  # on a host: its run there ends (the host closes its copy), its work kept here
            from orch.workflow import remote

            row = ctx.store.hosted(slug)  # (placed or not yet: its workflow ends either way)
            if row is not None:
                result.host = remote.close(ctx, row)
        panes = [p for p in ctx.panes() if p.task == slug]
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        os.makedirs(ctx.ws.logs, exist_ok=True)
        for pane in panes:
            if pane.pane_role == "shell":
                continue
            try:
                screen = ctx.mux.capture(pane.pane_id, lines=2000)
            except OrchError:
                continue
            path = os.path.join(ctx.ws.logs, f"{slug}-{pane.role or 'pane'}-{stamp}-{pane.pane_id[1:]}.txt")
            atomic_write(path, (screen + "\n").encode("utf-8"), mode=0o600)
            result.screens.append(path)
        for window_id in sorted({p.window_id for p in panes}):  # its own windows only (a session may hold others)
            ctx.mux.kill_window(window_id)
        jobs.cancel(ctx, slug)  # a validation still running for it
        sandboxing.forget(ctx, slug)  # its coder's last commits onto the branch, then its view of it goes
        faults.point("close.windows")
        now = time.time()
        for w in ctx.store.task_workers(slug):
            workers.move(ctx, w, WorkerState.CLOSED, WorkerEvent.CLOSED, Actor.PERSON, "task closed", ended_at=now)
        if folder_gone and ours:  # deleted by hand: nothing to lose, git only needs to forget it
            git.prune_worktrees(ctx.ws.root)
            result.worktree_removed = worktree
        elif is_worktree and ours:
            git.remove_worktree(ctx.ws.root, worktree, force=force)
            result.worktree_removed = worktree
        elif is_worktree:
            result.worktree_kept = worktree
        if result.worktree_removed:
            ctx.store.forget_made("worktree", os.path.realpath(worktree))
        if delete_branch and git.branch_exists(ctx.ws.root, branch):
            git.delete_branch(ctx.ws.root, branch)
            ctx.store.forget_made("branch", branch)
            result.branch_deleted = True
        result.branch = branch
        kept = "deleted" if result.branch_deleted else "kept"
        T.move(ctx, slug, TaskState.DONE, TaskEvent.CLOSE, Actor.PERSON, refuse=True,
               status=f"closed by the user; branch {branch} {kept}", path=task.path)
        os.makedirs(ctx.cfg.done_path, exist_ok=True)
        target = os.path.join(ctx.cfg.done_path, slug + ".md")
        if os.path.exists(target):
            target = os.path.join(ctx.cfg.done_path, f"{slug}-{stamp}.md")
        os.replace(task.path, target)
        faults.point("close.moved")
        ctx.store.forget_task(slug)  # a new task of the same name starts with no history
        result.moved_to = target
        ctx.event("close", f"closed; task file moved to {target}", task=slug)
        return result
