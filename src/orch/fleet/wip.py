"""A task's work in progress on the cluster's git remote: ``refs/orch/wip/<task>``, pushed by the task's host after
each new head of its branch (by lease: a host declared lost never overwrites its successor's push), fetched by the
next host and by the workspace once the task is ready, deleted when the person closes the task."""

from __future__ import annotations

from orch import child, git


def wip_ref(slug: str) -> str:
    return f"refs/orch/wip/{slug}"


def fetch(repo: str, remote: str, slug: str, check: bool = False) -> child.Done:
    """The task's work in progress from ``remote`` into ``repo``'s ``refs/orch/wip/<task>`` (forced: the remote's is
    the one that counts)."""
    return git.run(repo, "fetch", "--quiet", "--no-tags", "--", remote, f"+{wip_ref(slug)}:{wip_ref(slug)}",
                   check=check)


def fetch_task(clone: str, remote: str, base: str, slug: str) -> str | None:
    """The base and the task's work in progress, from the remote; the wip's sha, None when there is none. The base
    is also this clone's branch of that name (a task's front matter may name it), unless it is checked out."""
    specs = [f"+refs/heads/{base}:refs/remotes/{remote}/{base}"] if base else []
    git.run(clone, "fetch", "--quiet", "--no-tags", "--", remote, *specs)
    if base and git.current_branch(clone) != base and not any(w.branch == base for w in git.worktrees(clone)):
        git.run(clone, "branch", "--force", "--", base, f"refs/remotes/{remote}/{base}", check=False)
    return git.rev(clone, wip_ref(slug)) if fetch(clone, remote, slug).returncode == 0 else None


def push_wip(clone: str, remote: str, slug: str, sha: str, expect: str) -> None:
    """``sha`` as the task's work in progress on the remote, only while the remote still holds what this host last
    pushed or fetched there (``expect``; "": nothing): a host declared lost, still running, never overwrites the
    work of the host its task went to."""
    git.run(clone, "push", "--quiet", "--no-verify", f"--force-with-lease={wip_ref(slug)}:{expect}", "--", remote,
            f"{sha}:{wip_ref(slug)}")


def keep_on_branch(repo: str, remote: str, slug: str, branch: str) -> str:
    """Before the task's work in progress goes: its commits on ``branch`` in ``repo`` (the branch made at it when
    there is none: "made"; moved on to it when it is behind and checked out nowhere). Returns "" when the branch
    holds them, "made", or why they are not kept (the ref is not to be deleted then)."""
    ref = wip_ref(slug)
    got = fetch(repo, remote, slug)
    if got.returncode != 0:
        listed = git.run(repo, "ls-remote", "--", remote, ref, check=False)
        if listed.returncode == 0 and not listed.stdout.strip():
            return ""  # nothing there: nothing to keep
        err = (got.stderr or listed.stderr).decode("utf-8", "replace").strip().splitlines()
        return f"cannot fetch it ({err[-1] if err else 'git fetch failed'})"
    sha = git.rev(repo, ref) or ""
    tip = git.rev(repo, f"refs/heads/{branch}")
    if not sha or tip == sha or (tip and git.is_ancestor(repo, sha, tip)):
        return ""
    if tip is None:
        git.run(repo, "branch", "--", branch, sha)
        return "made"
    if git.is_ancestor(repo, tip, sha) and not any(w.branch == branch for w in git.worktrees(repo)):
        git.run(repo, "branch", "--force", "--", branch, sha)
        return ""
    return f"its commits are not on {branch} (fetch it with `git fetch {remote} {ref}`)"


def delete(repo: str, remote: str, slug: str) -> str:
    """The task's work in progress (orch's own ref) deleted from ``remote`` by lease, at the head read just before
    (nothing pushed since is lost), and from ``repo``. Returns why it could not be deleted from the remote, or ""."""
    ref = wip_ref(slug)
    listed = git.run(repo, "ls-remote", "--", remote, ref, check=False)
    if listed.returncode != 0:
        err = listed.stderr.decode("utf-8", "replace").strip().splitlines()
        return f"cannot read the remote ({err[-1] if err else f'exit {listed.returncode}'})"
    words = listed.stdout.decode("utf-8", "replace").split()
    why = ""
    if words:
        local = git.rev(repo, ref)
        if local and local != words[0]:
            return f"it moved to {words[0][:12]} since it was kept here"
        pushed = git.run(repo, "push", "--quiet", "--no-verify", f"--force-with-lease={ref}:{words[0]}", "--", remote,
                         f":{ref}", check=False)
        if pushed.returncode != 0:
            err = pushed.stderr.decode("utf-8", "replace").strip().splitlines()
            why = err[-1] if err else f"exit {pushed.returncode}"
    if not why and git.rev(repo, ref):
        git.run(repo, "update-ref", "-d", ref, check=False)
    return why
