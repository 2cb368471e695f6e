"""The task-checker's report (`orch check TASK`, and part of `orch status TASK`): the worker's activity (its state,
where the state came from, its age), the git state (commits ahead and behind the base, dirty files, the last
commit), the pull request as the pass last read it (checks, review decision, threads, mergeability), the forge's
budget, and the recommended next action in words. Read-only: the forge is not asked (the pass keeps the PR's
view current), git is read locally.
"""

from __future__ import annotations

import os
import time

from orch import forge as F
from orch import git
from orch.lifecycle import way_on
from orch.workflow import tasks as T
from orch.workflow.context import Ctx


def report(ctx: Ctx, slug: str, task: T.Task | None = None, workers: list[dict] | None = None) -> dict:
    task = task or T.get(ctx, slug)
    if workers is None:
        from orch.workflow.taskview import one

        workers = one(ctx, slug)["workers"]
    return {
        "task": slug,
        "state": task.state,
        "activity": [{"worker": w["address"], "state": w["state"], "source": w.get("state_source") or "",
                      "age_s": w["state_for_s"]} for w in workers],
        "git": git_state(ctx, task),
        "pull_request": pull_view(ctx, slug),
        "forge": forge_view(ctx),
        "next": next_action(task),
    }


def git_state(ctx: Ctx, task: T.Task) -> dict:
    from orch.workflow import spawn

    branch = task.meta.get("branch") or ctx.cfg.branch_prefix + task.slug
    worktree = task.meta.get("worktree") or os.path.join(ctx.cfg.worktree_path, task.slug)
    head = git.rev(ctx.ws.root, branch)
    if head is None:
        return {"branch": branch, "head": None, "base": None, "ahead": 0, "behind": 0, "dirty": [], "last_commit": None}
    base = spawn.resolve_base(ctx, task)
    counts = git.run(ctx.ws.root, "rev-list", "--left-right", "--count", f"{base}...{head}", "--", check=False)
    behind, ahead = (int(n) for n in counts.stdout.split()) if counts.returncode == 0 else (0, 0)
    last = git.run(ctx.ws.root, "log", "-1", "--format=%H%x00%s%x00%ct", head, "--", check=False)
    sha, subject, at = (last.stdout.decode("utf-8", "replace").strip().split("\0") + ["", "", "0"])[:3]
    return {
        "branch": branch, "head": head, "base": base, "ahead": ahead, "behind": behind,
        "dirty": git.status_porcelain(worktree) if os.path.isdir(worktree) else [],
        "last_commit": {"sha": sha, "subject": subject, "age_s": round(time.time() - int(at or 0), 1)},
    }


def pull_view(ctx: Ctx, slug: str) -> dict | None:
    """The task's PR as the pass last read it (None: no PR known)."""
    row = ctx.store.pull(slug)
    if row is None:
        return None
    pull = F.pull_from(row.data)
    return {
        "number": pull.number, "url": pull.url, "state": pull.state, "draft": pull.draft, "head_sha": pull.head_sha,
        "checks": [{"name": c.name, "status": c.status, "conclusion": c.conclusion, "url": c.url} for c in pull.checks],
        "review_decision": pull.review_decision,
        "changes_requested_by": [r.author for r in pull.change_requests()],
        "threads_open": [{"path": t.path, "line": t.line, "url": t.comments[0].url if t.comments else "",
                          "by": t.comments[0].author if t.comments else ""} for t in pull.threads if t.open],
        "threads_resolved": sum(1 for t in pull.threads if t.resolved),
        "mergeable": pull.mergeable, "merge_state": pull.merge_state,
        "read_at": row.fetched_at, "age_s": round(time.time() - row.fetched_at, 1),
        "reactions": [{"kind": r.kind, "key": r.key, "sha": r.sha, "round": r.round, "at": r.at}
                      for r in ctx.store.reactions(slug)],
    }


def forge_view(ctx: Ctx) -> dict:
    """The forge's state: when it was last asked, the rate limit's budget, a wait, a problem."""
    meta = ctx.store.forge_meta()

    def num(key: str) -> float | None:
        try:
            return float(meta[key])
        except (KeyError, ValueError):
            return None

    remaining, limit = num("remaining"), num("limit")
    return {
        "asked_at": num("asked_at"),
        "budget": {"remaining": int(remaining) if remaining is not None else None,
                   "limit": int(limit) if limit is not None else None, "reset_at": num("reset_at")},
        "rate_limited_until": num("wait_until"),
        "problem": meta.get("problem"),
    }


def next_action(task: T.Task) -> str:
    """The recommended next action: the forge's word when the task has a PR, else what moves its state on."""
    said = task.field("next")
    if said:
        return said
    if task.field("problem"):
        return f"{task.field('problem')}"
    return way_on(task.state, task.slug)


def lines(data: dict) -> list[str]:
    """The report in words (what came from the forge with terminal control sequences neutralised)."""
    from orch.terminal import neutralise_line

    return [neutralise_line(line) for line in _lines(data)]


def _lines(data: dict) -> list[str]:
    out = [f"{data['task']}: {data['state']}", f"next: {data['next']}"]
    for a in data["activity"]:
        age = f"{a['age_s']:.0f} s" if a["age_s"] is not None else "?"
        out.append(f"worker {a['worker']}: {a['state']}{' - ' + a['source'] if a['source'] else ''}, {age}")
    g = data["git"]
    if g["head"] is None:
        out.append(f"git: the branch {g['branch']} does not exist")
    else:
        last = g["last_commit"] or {}
        out.append(f"git: {g['branch']} at {g['head'][:7]}, {g['ahead']} ahead and {g['behind']} behind {g['base']}, "
                   f"{len(g['dirty'])} dirty file(s); last commit {last.get('sha', '')[:7]} "
                   f"\"{last.get('subject', '')}\" {last.get('age_s', 0):.0f} s ago")
    p = data["pull_request"]
    if p is None:
        out.append("pull request: none known")
    else:
        out.append(f"pull request #{p['number']} {p['state'].lower()}{' (draft)' if p['draft'] else ''}: {p['url']}")
        out.append(f"  head {p['head_sha'][:7]}, mergeable: {p['mergeable'].lower() or '?'}, review decision: "
                   f"{p['review_decision'].lower().replace('_', ' ') or 'none'}, read {p['age_s']:.0f} s ago")
        for c in p["checks"]:
            out.append(f"  check {c['name']}: {c['conclusion'] or c['status']}  {c['url']}")
        for who in p["changes_requested_by"]:
            out.append(f"  changes requested by @{who}")
        for t in p["threads_open"]:
            out.append(f"  open thread {t['path']}{':' + str(t['line']) if t['line'] else ''} by @{t['by']}  {t['url']}")
        if p["threads_resolved"]:
            out.append(f"  {p['threads_resolved']} thread(s) resolved")
    f = data["forge"]
    if f["asked_at"] is not None:
        b = f["budget"]
        budget = (f"{b['remaining']}/{b['limit']} requests left" if b["remaining"] is not None else "budget unknown")
        out.append(f"forge: asked {time.time() - f['asked_at']:.0f} s ago, {budget}"
                   + (f", rate limited until {time.strftime('%H:%M:%S', time.localtime(f['rate_limited_until']))}"
                      if f["rate_limited_until"] else "")
                   + (f"; problem: {f['problem']}" if f["problem"] else ""))
    return out
