"""Each worker's sandbox (orch/sandbox.py runs bubblewrap) as the workflow sets it up: what the worker sees and may
write, its spool (orch/workerhost.py hands what it says on to the inbox), and the task branch it commits to.

A coder commits on its task's branch, and on nothing else: inside its sandbox the folder of orch's branches
(``.git/refs/heads/orch``) is a folder of the task's own (``.orch/sandbox/<task>/heads``) holding only its branch,
so it cannot move the base, your branches or another task's. orch carries the branch across at every pass
(``sync``): a commit of the coder's moves the real branch; a move of yours (or orch's) reaches the coder's view.
"""

from __future__ import annotations

import os
import sys

from orch import branchview, child, files, sandbox
from orch.agents.base import Agent, LaunchRequest
from orch.child import which
from orch.errors import OrchError
from orch.record import replace
from orch.workflow.context import Ctx


def decide(ctx: Ctx) -> tuple[str | None, str]:
    """(bwrap's path or None, what the workers get) for this workspace (see ``sandbox.decide``)."""
    bwrap, how = sandbox.decide(ctx.cfg.sandbox, ctx.ws.path(sandbox.MEMO))
    if bwrap and "/" not in ctx.cfg.branch_prefix:
        why = (f"branch_prefix = {ctx.cfg.branch_prefix!r} has no folder: a coder's sandbox gives it a folder of "
               "branches of its own; use a prefix like \"orch/\"")
        if ctx.cfg.sandbox == "required":
            raise OrchError(f"sandbox = \"required\" but {why}: no worker was started")
        return None, f"off ({why})"
    return bwrap, how


def spool_of(ctx: Ctx, worker_id: str) -> str:
    """A worker's own spool: the one folder of orch's it may write."""
    return ctx.ws.path("spool", worker_id.replace(":", "~"))


def sweep(ctx: Ctx, live: set[str], settle: float = 60.0) -> list[str]:
    """The spools of workers that ended (not among ``live``), once their host has handed everything on (nothing
    left in ``new``) and a minute has passed: removed. Returns the worker ids."""
    import time

    base = ctx.ws.path("spool")
    try:
        names = os.listdir(base)
    except FileNotFoundError:
        return []
    gone = []
    for name in names:
        worker_id, folder = name.replace("~", ":"), os.path.join(base, name)
        if worker_id in live:
            continue
        try:  # its host has handed everything on (nothing in new or cur), and nothing moved there for a while
            parts = [os.path.join(folder, sub) for sub in ("new", "cur") if os.path.isdir(os.path.join(folder, sub))]
            if any(os.listdir(p) for p in parts) or any(
                    time.time() - os.stat(p).st_mtime < settle for p in (folder, *parts)):
                continue
        except FileNotFoundError:
            pass
        import shutil

        shutil.rmtree(folder, ignore_errors=True)
        gone.append(worker_id)
    return gone


def view_of(ctx: Ctx, slug: str) -> str:
    """The task's own git refs as its workers see them: ``heads/<leaf>``, ``logs/``, and ``synced`` (the commit
    both sides had at the last sync)."""
    return ctx.ws.path("sandbox", slug)


def confine(ctx: Ctx, req: LaunchRequest, agent: Agent, argv: list[str], bwrap: str, branch: str) -> list[str]:
    """The worker's command inside its sandbox, under its host."""
    home = req.home
    slug = os.path.basename(req.worktree)
    common = req.git_dirs[0]
    folder = os.path.dirname(os.path.join("refs", "heads", branch))
    view = _prepare(ctx, slug, branch)
    coder = req.role == "coder"
    write = [req.spool, *agent.sandbox_write(req), *(_expand(p, home) for p in req.profile.sandbox_write)]
    plan = _plan(ctx, req.worktree, req.git_dirs, view, folder, writable=coder,
                 path=req.env.get("PATH") or os.environ.get("PATH", ""), argv=argv, home=home,
                 write=write, hide=[_expand(p, home) for p in req.profile.sandbox_hide])
    host = [sys.executable, "-m", "orch.workerhost", ctx.ws.root, req.worker_id, req.spool,
            *(["--view", view, "--refs", os.path.join(common, folder)] if coder else []), "--"]
    return [*host, *sandbox.wrap(plan, argv, bwrap)]


def for_validation(ctx: Ctx, slug: str, worktree: str, branch: str) -> list[str]:
    """The command prefix (bwrap ... --) that runs a task's validation in the sandbox its coder has (the code it
    runs is the coder's): its worktree writable, its git view read-only, nothing of orch's visible; [] with the
    sandbox off."""
    bwrap, _ = decide(ctx)
    if not bwrap:
        return []
    from orch import git

    dirs = git.git_dirs(worktree)
    folder = os.path.dirname(os.path.join("refs", "heads", branch))
    view = _prepare(ctx, slug, branch)
    home = os.path.expanduser("~")
    plan = _plan(ctx, worktree, dirs, view, folder, writable=False, path=os.environ.get("PATH", ""), argv=["sh"],
                 home=home, write=[worktree, *(_expand(p, home) for p in ctx.cfg.validate_.write)], hide=[])
    # tools cache in ~/.cache (pip, uv, go's build cache): writable there, but a copy of the coder's code must not
    # leave anything in yours, so it is a private, empty one for the run
    plan = replace(plan, scratch=(os.path.join(home, ".cache"),))
    return sandbox.wrap(plan, [], bwrap)


def _plan(ctx: Ctx, worktree: str, git_dirs: list[str], view: str, folder: str, *, writable: bool, path: str,
          argv: list[str], home: str, write: list[str], hide: list[str]) -> sandbox.Plan:
    """One worker's view (see orch/sandbox.py). A coder (``writable``) writes its worktree and commits on its
    branch: its worktree's own git folder, an object store of its own (new objects go there; the repository's are
    read through it, read-only, and orch takes the new ones in, checked, when it carries a commit) and the task's
    own folder of branches. The files that say where its repository is cannot be changed."""
    state, tasks = ctx.ws.state, ctx.cfg.tasks_path
    common = git_dirs[0]
    os.makedirs(os.path.join(common, "logs", folder), mode=0o755, exist_ok=True)
    if writable:
        write = [*write, worktree, *git_dirs[1:]]
    fixed = [os.path.join(worktree, ".git"),
             *(os.path.join(d, f) for d in git_dirs[1:] for f in ("commondir", "gitdir", "config.worktree"))]
    for d in git_dirs[1:]:  # git reads it (filters, hooks) once extensions.worktreeConfig is on: yours, read-only
        files.touch(os.path.join(d, "config.worktree"), 0o644)
    objects = os.path.join(common, "objects")
    hide = [state, *([] if tasks.startswith(state + os.sep) else [tasks]), sandbox.tmux_sockets(), *hide]
    return sandbox.Plan(
        chdir=worktree,
        write=tuple(write),
        show=(os.path.join(state, "bin"), os.path.join(state, "agents"), os.path.join(state, "prompts")),
        hide=tuple(p for p in hide if os.path.isdir(p)),
        keep=_programs(ctx.ws.root, home, path, argv),
        binds=((os.path.join(view, "heads"), os.path.join(common, folder), writable),
               (os.path.join(view, "logs"), os.path.join(common, "logs", folder), writable),
               (os.path.join(view, "objects"), objects, writable),
               (objects, os.path.join(view, "base"), False),
               (os.path.join(view, "objects", "info"), os.path.join(objects, "info"), False),
               *((p, p, False) for p in fixed if os.path.exists(p))),
    )


def _programs(root: str, home: str, path: str, argv: list[str]) -> tuple[str, ...]:
    """What a worker must still see when it lies under the private /tmp: the repository, HOME, orch itself, this
    Python, the agent's program (and the files its command names) and the programs on its PATH (with each one's
    parent folder: a virtualenv, node_modules)."""

    import orch

    found = [root, home, sys.prefix, os.path.realpath(sys.prefix),
             os.path.dirname(os.path.dirname(os.path.realpath(orch.__file__)))]
    where = which(argv[0], path=path) or argv[0]
    folders = [os.path.dirname(p) for p in (where, *argv[1:]) if os.path.isabs(p) and os.path.exists(p)]
    folders += [os.path.dirname(os.path.realpath(p)) for p in folders]
    for folder in [*folders, *path.split(os.pathsep)]:
        if folder and os.path.isabs(folder):
            found += [folder, os.path.dirname(folder), os.path.dirname(os.path.realpath(folder))]
    return tuple(dict.fromkeys(found))


def _expand(path: str, home: str) -> str:
    return os.path.join(home, path[2:]) if path.startswith("~/") else os.path.abspath(path)


def _prepare(ctx: Ctx, slug: str, branch: str) -> str:
    """The task's view of its branch, made (or brought up to date) before a worker of it starts."""
    view = view_of(ctx, slug)
    for sub in ("heads", "logs", os.path.join("objects", "info"), os.path.join("objects", "pack")):
        os.makedirs(os.path.join(view, sub), mode=0o700, exist_ok=True)
    branchview.prepare_objects(ctx.ws.root, view)
    files.atomic_write(os.path.join(view, "branch"), (branch + "\n").encode(), mode=0o600)
    sync_one(ctx, slug)
    return view


def sync_one(ctx: Ctx, slug: str) -> str:
    """Carry the task's branch across (``carry``), with what happened in the log; "" when nothing moved."""
    moved, problem = branchview.carry(ctx.ws.root, view_of(ctx, slug))
    if problem:
        ctx.event("sandbox", problem, task=slug)
    return moved


def start_sync(ctx: Ctx) -> child.Running | None:
    """The git read ``sync`` begins with, started now (a pass reads its messages meanwhile; nothing it does before
    ``sync`` moves a branch); None when there is no sandboxed task."""
    from orch import git

    try:
        if not os.listdir(ctx.ws.path("sandbox")):
            return None
    except FileNotFoundError:
        return None
    return git.start_branch_heads(ctx.ws.root, ctx.cfg.branch_prefix)


def sync(ctx: Ctx, started: child.Running | None = None) -> tuple[list[str], dict[str, str] | None]:
    """Every task's branch carried across (see ``sync_one``): (what moved, every orch branch's commit after it, or
    None when there was nothing to carry and they were not read). ``started``: ``start_sync``'s read."""
    from orch import git

    try:
        slugs = sorted(os.listdir(ctx.ws.path("sandbox")))
    except FileNotFoundError:
        slugs = []
    if not slugs:
        if started is not None:
            started.cancel()
        return [], None
    heads = git.branch_heads(ctx.ws.root, ctx.cfg.branch_prefix, started)  # one git process for every branch
    moved = [f"{slug}: {what}" for slug in slugs
             if not branchview.settled(view_of(ctx, slug), heads) and (what := sync_one(ctx, slug))]
    return moved, (git.branch_heads(ctx.ws.root, ctx.cfg.branch_prefix) if moved else heads)


def forget(ctx: Ctx, slug: str) -> None:
    """A closed task's view goes (after a last sync)."""
    sync_one(ctx, slug)
    import shutil

    shutil.rmtree(view_of(ctx, slug), ignore_errors=True)
