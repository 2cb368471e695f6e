"""`orch diff TASK`: what a task's branch changes against its base (as git would merge it: from their merge base),
as of now or as of a review round, and how its commits changed between two rounds. Read-only."""

from __future__ import annotations

from orch import git
from orch.errors import OrchError
from orch.workflow import spawn
from orch.workflow import tasks as T
from orch.workflow.context import Ctx


def round_sha(ctx: Ctx, slug: str, round_no: int) -> str:
    """The commit that round ``round_no`` of the task was validated or reviewed on."""
    shas = [r.sha for r in ctx.store.reviews(slug) if r.round == round_no]
    shas += [v.sha for v in ctx.store.validations(slug) if v.round == round_no]
    if not shas:
        rounds = sorted({r.round for r in ctx.store.reviews(slug)} | {v.round for v in ctx.store.validations(slug)})
        known = ", ".join(map(str, rounds)) or "none yet"
        raise OrchError(f"task {slug!r} has no round {round_no} (rounds with a commit: {known})")
    return shas[-1]


def show(ctx: Ctx, slug: str, stat: bool = False, round_no: int | None = None, since: int | None = None,
         color: bool = False) -> str:
    """The diff of the task's branch against its base (``round_no``: as of that round); with ``since``, the
    range-diff of its commits from that round to now (or to ``round_no``)."""
    task = T.get(ctx, slug)
    root = ctx.ws.root
    branch = ctx.cfg.branch_prefix + slug
    head = round_sha(ctx, slug, round_no) if round_no is not None else git.rev(root, f"refs/heads/{branch}")
    if not head:
        raise OrchError(f"task {slug!r} has no branch yet ({branch}): it starts with its coder")
    base = spawn.resolve_base(ctx, task)
    base_sha = git.merge_base(root, base, head) or git.rev(root, base)
    if not base_sha:
        raise OrchError(f"the base {base!r} of task {slug!r} is not a branch or commit here")
    if since is not None:
        return git.range_diff(root, base_sha, round_sha(ctx, slug, since), head, color)
    return git.diff(root, base_sha, head, stat, color)
