"""git for landing (orch/git.py's other half): integration commits built without a worktree, rebases in orch's
scratch worktree, the range-diff that proves a rebase changed nothing, and the one move of a base branch orch
ever makes, a compare-and-swap to a validated commit.
"""

from __future__ import annotations

import os

from orch.git import GitError, head_branch, out, rev, run, status_porcelain

IDENTITY = ("-c", "user.name=orch", "-c", "user.email=orch@localhost")


def merge_commit(repo: str, tip: str, member: str, message: str) -> tuple[str | None, list[str]]:
    """``member`` merged into ``tip`` as a new commit (parents tip, member), written without a worktree
    (``merge-tree --write-tree`` + ``commit-tree``): (the commit, []) or (None, the conflicting paths)."""
    proc = run(repo, "merge-tree", "--write-tree", "--name-only", "--no-messages", tip, member, check=False)
    text = proc.stdout.decode("utf-8", "replace").splitlines()
    if proc.returncode == 1:
        return None, [line for line in text[1:] if line.strip()]
    if proc.returncode != 0 or not text:
        err = proc.stderr.decode("utf-8", "replace").strip()
        return None, [f"({err.removeprefix('fatal: ') or 'git merge-tree failed'})"]
    tree = text[0].strip()
    commit = run(repo, *IDENTITY, "commit-tree", tree, "-p", tip, "-p", member, "-m", message).stdout
    return commit.decode().strip(), []


def rebase(worktree: str, onto: str, fork: str, head: str) -> tuple[str | None, list[str]]:
    """The commits ``fork..head`` replayed onto ``onto`` in orch's scratch worktree (detached): (the new head, [])
    or (None, the conflicting paths; the rebase is aborted)."""
    run(worktree, "checkout", "--quiet", "--detach", "--force", head)
    proc = run(worktree, *IDENTITY, "rebase", "--quiet", "--onto", onto, fork, check=False)
    if proc.returncode == 0:
        return out(worktree, "rev-parse", "HEAD"), []
    paths = [line for line in out(worktree, "diff", "--name-only", "--diff-filter=U").splitlines() if line]
    run(worktree, "rebase", "--abort", check=False)
    return None, paths or ["(the rebase stopped: " + proc.stderr.decode("utf-8", "replace").strip()[:200] + ")"]


def same_patches(repo: str, old_base: str, old: str, new_base: str, new: str) -> tuple[bool, str]:
    """``git range-diff old_base..old new_base..new``: whether every commit's patch is the same (only ``=``
    pairs), and the range-diff itself (the evidence)."""
    text = out(repo, "range-diff", "--no-color", f"{old_base}..{old}", f"{new_base}..{new}")
    lines = [line for line in text.splitlines() if line[:1].isdigit() or line[:1] == "-"]
    same = bool(lines) and all(" = " in line[:30] for line in lines)
    return same, text


def checkout(worktree: str, sha: str) -> None:
    """The scratch worktree at ``sha``, exactly (what an earlier run left is cleaned away)."""
    run(worktree, "checkout", "--quiet", "--detach", "--force", sha)
    run(worktree, "clean", "-qfdx")


def scratch(repo: str, path: str, sha: str) -> None:
    """orch's scratch worktree for a train (detached at ``sha``), made if missing."""
    if os.path.isdir(path):
        checkout(path, sha)
        return
    run(repo, "worktree", "add", "--quiet", "--detach", path, sha)


def drop_scratch(repo: str, path: str) -> None:
    if os.path.isdir(path):
        run(repo, "worktree", "remove", "--force", path, check=False)
    run(repo, "worktree", "prune", check=False)


def advance(repo: str, base: str, new: str, old: str) -> str:
    """Move the branch ``base`` from ``old`` to ``new`` (a descendant), only if it is still at ``old``: a
    compare-and-swap, never forced. Where ``base`` is checked out in the repository, its working tree follows
    (``merge --ff-only``, refused when it has changes of its own). Returns "" when moved, else why not."""
    if rev(repo, f"refs/heads/{base}") != old:
        return "moved"
    if head_branch(repo) == base:
        dirty = [line for line in status_porcelain(repo) if not line.startswith("??")]
        if dirty:
            return f"dirty: {base} is checked out in {repo} with uncommitted changes ({len(dirty)} path(s))"
        proc = run(repo, "merge", "--quiet", "--ff-only", "--no-edit", new, check=False)
        if proc.returncode != 0:
            if rev(repo, f"refs/heads/{base}") != old:
                return "moved"
            raise GitError("git merge --ff-only: " + proc.stderr.decode("utf-8", "replace").strip()[-200:])
        return ""
    proc = run(repo, "update-ref", "-m", "orch land", f"refs/heads/{base}", new, old, check=False)
    return "" if proc.returncode == 0 else "moved"
