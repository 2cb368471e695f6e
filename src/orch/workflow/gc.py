"""`orch gc`: what is stale, and its removal only when the person says so.

Stale: this workspace's windows whose task is closed or gone (orphans), dead panes, worktrees under the worktree
folder that belong to no open task, and task branches fully merged into the base. Only what orch made is ever
removed (the registry of what it made: `made`), whatever the configuration: a worktree or branch of the same name
that orch did not create is named and left alone, and so is anything with work in it (uncommitted changes, a branch
not merged).
"""

from __future__ import annotations

import os
from collections.abc import Callable

from orch import git
from orch.errors import OrchError
from orch.locks import hold
from orch.mux import Pane
from orch.record import dataclass
from orch.workflow import spawn
from orch.workflow import tasks as T
from orch.workflow.context import Ctx


@dataclass(frozen=True)
class Stale:
    kind: str  # window, dead-pane, worktree, branch
    what: str  # a window id, a path, a branch name
    why: str
    removable: bool = True


def find(ctx: Ctx) -> list[Stale]:
    tasks, _ = T.load(ctx)
    done = T.done_slugs(ctx)
    out: list[Stale] = []
    panes = ctx.panes()
    tagged_windows: dict[str, list[Pane]] = {}
    for p in panes:
        if p.task:
            tagged_windows.setdefault(p.window_id, []).append(p)
    for window_id, group in tagged_windows.items():
        first = group[0]
        if first.task not in tasks:
            why = "its task is closed" if first.task in done else "its task file is gone"
            out.append(Stale("window", window_id, f"{first.task}:{first.role or 'coder'} in {first.session_name}: {why}"))
            continue
        for p in group:
            if p.dead:
                out.append(Stale("dead-pane", p.pane_id, f"{p.task}:{p.role or 'coder'} in window {window_id} "
                                                          f"exited; the task stays open"))
    root = os.path.realpath(ctx.cfg.worktree_path)
    open_branches = {ctx.cfg.branch_prefix + slug for slug in tasks}
    kept_checked_out = set()  # branches in worktrees that stay (a merged branch there cannot be deleted)
    for wt in git.worktrees(ctx.ws.root):
        path = os.path.realpath(wt.path)
        slug = os.path.basename(path)
        if os.path.dirname(path) != root or slug in tasks:
            if wt.branch:
                kept_checked_out.add(wt.branch)
            continue
        why = "its task is closed" if slug in done else "no task has it"
        if not ctx.store.made("worktree", path):
            if wt.branch:
                kept_checked_out.add(wt.branch)
            out.append(Stale("worktree", wt.path, f"{why}, but orch did not make it: left alone", removable=False))
            continue
        if wt.prunable:
            out.append(Stale("worktree", wt.path, f"{why}; its folder is already gone (pruned from git's list)"))
            continue
        dirty = git.status_porcelain(wt.path) if os.path.isdir(wt.path) else []
        if dirty:
            kept_checked_out.add(wt.branch or "")
            out.append(Stale("worktree", wt.path, f"{why}, but it has {len(dirty)} uncommitted change(s): left alone",
                             removable=False))
        else:
            out.append(Stale("worktree", wt.path, why))
    base = spawn.resolve_base(ctx, None)
    merged = git.merged_branches(ctx.ws.root, base, ctx.cfg.branch_prefix) if git.rev(ctx.ws.root, base) else []
    for branch in merged:  # (a repository without commits has no merged branches)
        if branch in open_branches or branch in kept_checked_out:
            continue
        if ctx.store.made("branch", branch):
            out.append(Stale("branch", branch, f"fully merged into {base}"))
        else:
            out.append(Stale("branch", branch, f"fully merged into {base}, but orch did not make it: left alone",
                             removable=False))
    return out


def _remove_worktree(ctx: Ctx, path: str) -> None:
    if os.path.isdir(path):
        git.remove_worktree(ctx.ws.root, path)
    else:
        git.prune_worktrees(ctx.ws.root)
    ctx.store.forget_made("worktree", os.path.realpath(path))


def _remove_branch(ctx: Ctx, branch: str) -> None:
    git.delete_merged_branch(ctx.ws.root, branch)
    ctx.store.forget_made("branch", branch)


REMOVE: dict[str, Callable[[Ctx, str], None]] = {
    "window": lambda ctx, window_id: ctx.mux.kill_window(window_id),
    "dead-pane": lambda ctx, pane_id: ctx.mux.kill_pane(pane_id),
    "worktree": _remove_worktree,
    "branch": _remove_branch,
}


def remove(ctx: Ctx, items: list[Stale]) -> list[str]:
    """Remove what ``find`` listed as removable; returns one line per item done or refused."""
    done: list[str] = []
    with hold(ctx.lock_path("scan"), wait=60) as got:
        if not got:
            raise OrchError("another orch pass is running (lock .orch/locks/scan.lock); try again shortly")
        order = list(REMOVE)  # windows first: a worktree is removed once nothing runs in it
        own = {p.window_id for p in ctx.panes()} | {p.pane_id for p in ctx.panes()}
        for s in sorted(items, key=lambda s: order.index(s.kind)):
            if not s.removable:
                continue
            if s.kind in ("window", "dead-pane") and s.what not in own:
                continue  # gone meanwhile (never another workspace's: find() lists only this one's)
            try:
                REMOVE[s.kind](ctx, s.what)
            except OrchError as exc:
                done.append(f"not removed: {s.kind} {s.what}: {exc}")
                continue
            ctx.event("gc", f"removed {s.kind} {s.what} ({s.why})")
            done.append(f"removed {s.kind} {s.what}")
    return done
