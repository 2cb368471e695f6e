"""`orch status`: tasks, their workers as tmux sees them now, orphans and invalid task files. Read-only."""

from __future__ import annotations

import os
import time

from orch import sandbox
from orch.errors import OrchError
from orch.mux import Pane, exit_code
from orch.store import PullRow, Worker
from orch.workflow import plan as P
from orch.workflow import tasks as T
from orch.workflow.context import Ctx

SCHEMA_VERSION = 1


def worker_view(w: Worker, pane: Pane | None, now: float) -> dict:
    state = w.state
    exit_status = w.exit_status
    if pane is None or pane.pane_pid != w.pane_pid:
        state = "lost"
    elif pane.dead:
        state, exit_status = "exited", exit_code(pane)
    return {
        "id": w.id,
        "address": w.address,
        "role": w.role,
        "agent": w.agent,
        "state": state,
        "state_for_s": round(max(now - w.state_since, 0), 1),
        "state_since": w.state_since,
        "exit_status": exit_status,
        "session": w.session_name,
        "session_id": w.session_id,
        "window_id": w.window_id,
        "pane_id": w.pane_id,
        "pane_pid": w.pane_pid,
        "worktree": w.worktree,
        "branch": w.branch,
        "agent_session": w.agent_session,
        "note": w.note,
        "sandbox": w.sandbox or "off (started before orch had a sandbox)",
    }


def sandbox_line(mode: str, memo: str | None = None) -> str:
    """What the next worker gets: "on (bubblewrap)", or "off (why)"; with "required" and no bubblewrap, that no
    worker starts."""
    try:
        return sandbox.decide(mode, memo)[1]
    except OrchError as exc:
        return f"required, and not available: {exc}"


def daemon_state(ctx: Ctx) -> dict:
    """Whether `orch run` runs for this workspace: its pid and since when (``since``: seconds since the epoch)."""
    from orch.workspace import daemon_pid

    pid = daemon_pid(ctx.ws)
    if pid is None:
        return {"running": False, "pid": None, "since": None}
    try:
        since: float | None = os.stat(ctx.ws.path("daemon.pid")).st_mtime
    except OSError:
        since = None
    return {"running": True, "pid": pid if pid > 0 else None, "since": since}


def closed_tasks(ctx: Ctx) -> list[dict]:
    """The closed tasks (their files in done/), newest last, in the shape of the open ones."""
    from orch import taskfile

    folder = ctx.cfg.done_path
    try:
        names = sorted((n for n in os.listdir(folder) if n.endswith(".md")),
                       key=lambda n: os.stat(os.path.join(folder, n)).st_mtime)
    except FileNotFoundError:
        return []
    out = []
    for name in names:
        path = os.path.join(folder, name)
        try:
            with open(path, encoding="utf-8", errors="replace") as fh:
                doc = taskfile.parse(fh.read())
        except (OSError, ValueError):
            continue
        out.append({"slug": name[:-3], "file": path, "state": "closed", "summary": doc.summary, "session": None,
                    "worktree": None, "branch": None, "agent": "", "depends_on": [],
                    "last_status": doc.status[-1] if doc.status else None, "pending_messages": 0,
                    "queued_for_workers": [], "workers": [], "pull_request": None, "next": None, "conflicts": None,
                    "host": None})
    return out


def collect(ctx: Ctx, closed: bool = False) -> dict:
    now = time.time()
    tasks, invalid = T.load(ctx)
    panes = ctx.panes()
    by_worker = P.agent_panes(panes)
    workers = ctx.store.live_workers()
    p = P.plan(tasks, T.done_slugs(ctx), workers, panes, P.proven(ctx, panes, workers))
    pending = ctx.store.pending_messages()
    last = {slug: T.status_lines([line])[0] for slug, line in ctx.store.last_log_lines().items()}
    queued = ctx.store.queued()
    pulls = ctx.store.pulls()
    on_hosts = ctx.store.all_hosted() if ctx.cfg.cluster.address else {}
    from orch.workflow import radar

    seen = radar.load(ctx)
    out_tasks = []
    for slug, task in tasks.items():
        views = [worker_view(w, by_worker.get(w.id), now) for w in workers if w.task == slug]
        for pane in p.adopt:
            if pane.task == slug:
                views.append(_unregistered_view(pane))
        out_tasks.append(
            {
                "slug": slug,
                "file": task.path,
                "state": task.state,
                "summary": task.summary,
                "session": task.meta.get("session"),
                "worktree": task.meta.get("worktree"),
                "branch": task.meta.get("branch"),
                "agent": task.agent or ctx.cfg.default_agent,
                "depends_on": task.depends_on,
                "last_status": last.get(slug) or (task.doc.status[-1] if task.doc.status else None),
                "pending_messages": sum(1 for m in pending if m.task == slug),
                "queued_for_workers": [
                    {"worker": q.worker, "why": q.why, "since": q.created_at, "text": q.text[:200]}
                    for q in queued
                    if q.task == slug
                ],
                "workers": views,
                "pull_request": _pull_summary(pulls[slug]) if slug in pulls else None,
                "next": task.field("next"),
                "conflicts": radar.of(seen, slug),
                "host": on_hosts[slug].host or None if slug in on_hosts else None,
            }
        )
    return {
        "version": SCHEMA_VERSION,
        "workspace": ctx.ws.root,
        "tmux_socket": ctx.cfg.socket,
        "sandbox": sandbox_line(ctx.cfg.sandbox, ctx.ws.path(sandbox.MEMO)),
        "daemon": daemon_state(ctx),
        "tasks": out_tasks + (closed_tasks(ctx) if closed else []),
        "orphans": [o.__dict__ for o in p.orphans],
        "invalid_tasks": [{"file": i.file, "error": i.error} for i in invalid],
    }


def _pull_summary(row: PullRow) -> dict:
    """A task's PR in `orch status --json` (as the pass last read it; `orch check TASK` has it all)."""
    checks = row.data.get("checks", [])
    return {
        "number": row.number, "url": row.url, "state": row.state, "head_sha": row.head_sha,
        "checks": {k: sum(1 for c in checks if _word(c) == k) for k in ("success", "failure", "pending")},
        "review_decision": row.data.get("review_decision", ""),
        "threads_open": sum(1 for t in row.data.get("threads", []) if not t["resolved"] and not t["outdated"]),
        "mergeable": row.data.get("mergeable", ""),
        "read_at": row.fetched_at,
    }


def _word(check: dict) -> str:
    if check["status"] not in ("completed",):
        return "pending"
    return "success" if check["conclusion"] in ("success", "neutral", "skipped") else "failure"


def _unregistered_view(pane: Pane) -> dict:
    return {
        "id": pane.worker,
        "address": pane.task if pane.role == "coder" else f"{pane.task}:{pane.role}",
        "role": pane.role,
        "agent": pane.agent,
        "state": "unregistered",
        "state_for_s": None,
        "state_since": None,
        "exit_status": None,
        "session": pane.session_name,
        "session_id": pane.session_id,
        "window_id": pane.window_id,
        "pane_id": pane.pane_id,
        "pane_pid": pane.pane_pid,
        "worktree": pane.current_path,
        "branch": None,
        "agent_session": "",
        "note": "",
        "sandbox": "unknown (not started by this registry)",
    }
