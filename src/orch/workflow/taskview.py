"""`orch status TASK`: everything about one task in one place (read-only): its summary, its workers (each state
with where it came from and how long it has held), the last status lines, the validation and the reviews of its
rounds, its dossier, and the task-checker's report (git, the pull request, the next action)."""

from __future__ import annotations

import os
import re
import time

from orch.workflow import tasks as T
from orch.workflow.context import Ctx
from orch.workflow.dossier import paths as dossier_paths
from orch.workflow.status import worker_view

STATUS_LINES = 12
STATE_EVENT = re.compile(r"-> \S+ \((?P<source>[^)]*)\)\s*$")


def one(ctx: Ctx, slug: str) -> dict:
    task = T.get(ctx, slug)
    now = time.time()
    panes = {p.worker: p for p in ctx.panes() if p.is_agent}
    sources = _state_sources(ctx, slug)
    workers: list[dict] = []
    ended: list[dict] = []
    for w in ctx.store.task_workers(slug, include_ended=True):
        view = worker_view(w, panes.get(w.id), now)
        view["state_source"] = sources.get(w.id, "")
        (ended if w.ended_at else workers).append(view)
    validations = ctx.store.validations(slug)
    last_sha = validations[-1].sha if validations else ""
    md, _ = dossier_paths(ctx, slug)
    from orch.workflow import checker, radar

    return {
        "slug": slug,
        "file": task.path,
        "state": task.state,
        "summary": task.summary,
        "branch": task.meta.get("branch"),
        "worktree": task.meta.get("worktree"),
        "agent": task.agent or ctx.cfg.default_agent,
        "depends_on": task.depends_on,
        "hold": task.hold,
        "workers": workers,
        "ended_workers": ended,
        "status": T.status_lines(ctx.store.task_log(slug))[-STATUS_LINES:] or task.doc.status[-STATUS_LINES:],
        "validation": [{"round": v.round, "sha": v.sha, "command": v.command, "exit_code": v.exit_code,
                        "timed_out": bool(v.timed_out), "duration": v.duration, "log": v.log_path}
                       for v in validations if v.sha == last_sha],
        "reviews": [{"round": r.round, "sha": r.sha, "decision": r.decision, "status": r.status, "note": r.note,
                     "findings": r.findings, "reviewer": r.reviewer} for r in ctx.store.reviews(slug)],
        "dossier": md if os.path.exists(md) else None,
        "pending_messages": len(ctx.store.pending_messages(slug)),
        "check": checker.report(ctx, slug, task, workers),
        "conflicts": radar.of(radar.load(ctx), slug),
    }


def _state_sources(ctx: Ctx, slug: str) -> dict[str, str]:
    """What set each worker's current state (its last state event: a hook, the screen, a prompt, the pass)."""
    found: dict[str, str] = {}
    for event in ctx.store.events(slug, limit=500, kind="state"):
        if event.worker and (m := STATE_EVENT.search(event.text)):
            found[event.worker] = m.group("source")
    return found
