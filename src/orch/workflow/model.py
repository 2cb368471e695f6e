"""The status model: every task with what it needs from the person, its state's provenance (what set it) and since
when, and its evidence (validation, verdict, pull request, conflicts). One model under the dashboards and
`orch status --json`: the daemon writes it after each pass (``.orch/model.json``, only when it changed; times are
absolute, so an age needs no new model), and a reader takes it without starting a pass.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable

from orch.errors import OrchError
from orch.files import atomic_write
from orch.workflow.context import Ctx
from orch.workspace import Workspace

SAVED = "model.json"
VERSION = 1

# what a task needs from the person, most urgent first (the dashboards' groups, in this order)
GROUPS = (
    ("needs-input", "needs input"),
    ("delivery-failed", "delivery failed"),
    ("blocked", "blocked"),
    ("ready", "ready to land"),
    ("held", "text held: someone is attached"),
    ("working", "working"),
    ("idle", "idle without a report"),
    ("pipeline", "validating and reviewing"),
    ("queued", "queued"),
    ("merged", "merged"),
    ("lost", "lost"),
)
GROUP_ORDER = {name: i for i, (name, _) in enumerate(GROUPS)}


def group_of(task: dict) -> str:
    """Which group a task of `orch status --json`'s shape belongs to."""
    state = task["state"]
    coder = next((w for w in task["workers"] if w["role"] == "coder" and w["state"] not in ("exited", "lost")), None)
    if state == "needs-input":
        return "needs-input"
    if coder is not None and coder["state"] == "waiting" and "not taken" in (coder.get("note") or ""):
        return "delivery-failed"
    if state in ("blocked", "ready", "queued", "merged", "lost"):
        return state
    if task["queued_for_workers"]:
        return "held"
    if state in ("validating", "reviewing", "checking"):
        return "pipeline"
    if coder is not None and coder["state"] == "idle":
        return "idle"
    return "working"


def headline(task: dict, now: float) -> str:
    """The task's state in words, with its source and age ("waiting - hook, 12 s", "validating - 2/3 command(s)
    passed on 3eabac1a7b2b, 40 s")."""
    coder = next((w for w in task["workers"] if w["role"] == "coder"), None)
    if coder is not None and task["state"] in ("coding", "fixing", "needs-input"):
        source = coder.get("state_source") or "registry"
        return f"{coder['state']} - {source}, {age(now - coder['state_since'])}"
    what = f" - {task['detail']}" if task.get("detail") else ""
    since = task.get("state_since")
    return f"{task['state']}{what}" + (f", {age(now - since)}" if since else "")


def detail(state: str, fields: dict) -> str:
    """What a state is at, from the task's summary: the validation, the verdict (stale when the head moved on), the
    pull request, why it is blocked."""
    review, head = fields.get("branch review") or "", fields.get("head") or ""
    verdict = ""
    if review:
        stale = head and not review.endswith(head[:12])
        verdict = f"verdict {review}" + (" (stale: head moved)" if stale else "")
    if state == "validating":
        return f"validation {fields['validation']}" if fields.get("validation") else ""
    if state in ("reviewing", "ready"):
        return verdict
    if state == "checking":
        return fields.get("pr state") or verdict
    if state == "blocked":
        return fields.get("blocked") or ""
    if state == "merged":
        return fields.get("merged") or ""
    return ""


def age(seconds: float) -> str:
    """An age in words: seconds (in steps of 5 past 10 s: a line is drawn again less often), minutes, hours."""
    s = max(int(seconds), 0)
    if s < 10:
        return f"{s} s"
    return f"{s - s % 5} s" if s < 60 else f"{s // 60} min" if s < 7200 else f"{s // 3600} h"


def build(ctx: Ctx) -> dict:
    """The model, from `orch status`'s view of the workspace plus each task's evidence (read-only)."""
    from orch.workflow.status import collect
    from orch.workflow.taskview import STATE_EVENT

    view = collect(ctx)
    rows = ctx.store.task_rows()
    sources: dict[str, str] = {}
    for event in ctx.store.events(limit=2000, kind="state"):  # what set each worker's state (oldest first)
        if event.worker and (m := STATE_EVENT.search(event.text)):
            sources[event.worker] = m.group("source")
    tasks = []
    for t in view["tasks"]:
        row = rows.get(t["slug"])
        fields = row.fields if row else {}
        for w in t["workers"]:
            w["state_source"] = sources.get(w["id"], "")
        task = {
            "slug": t["slug"], "state": t["state"], "state_since": row.updated_at if row else None,
            "agent": t["agent"], "branch": t["branch"], "worktree": t["worktree"],
            "summary": t["summary"], "last_status": t["last_status"],
            "workers": [{k: w.get(k) for k in ("id", "address", "role", "agent", "state", "state_since",
                                                 "state_source", "note", "window_id", "pane_id", "sandbox")}
                        for w in t["workers"]],
            "queued_for_workers": t["queued_for_workers"],
            "evidence": {"validation": fields.get("validation"), "review": fields.get("branch review"),
                         "head": fields.get("head"), "approved": fields.get("approved"),
                         "dossier": fields.get("dossier"), "pull_request": t["pull_request"],
                         "conflicts": t["conflicts"], "question": fields.get("question"),
                         "blocked": fields.get("blocked"), "round": fields.get("round")},
            "next": t["next"],
            "detail": detail(t["state"], fields),
        }
        task["group"] = group_of(t)
        tasks.append(task)
    tasks.sort(key=lambda x: (GROUP_ORDER.get(x["group"], 99), x["slug"]))
    return {"version": VERSION, "workspace": view["workspace"], "daemon": view["daemon"], "sandbox": view["sandbox"],
            "groups": [{"name": n, "title": title} for n, title in GROUPS], "tasks": tasks,
            "orphans": view["orphans"], "invalid_tasks": view["invalid_tasks"]}


def write(ctx: Ctx) -> bool:
    """The model written when it changed (the daemon, after a pass); True when it did."""
    model = build(ctx)
    path = ctx.ws.path(SAVED)
    try:
        with open(path, encoding="utf-8") as fh:
            old = json.load(fh)
        if json.dumps({**old, "at": None}, sort_keys=True, default=str) == json.dumps({**model, "at": None},
                                                                                     sort_keys=True, default=str):
            return False
    except (OSError, ValueError):
        pass
    model["at"] = time.time()
    atomic_write(path, (json.dumps(model) + "\n").encode("utf-8"), mode=0o644)
    return True


def read(ctx: Ctx) -> dict | None:
    """The model as the daemon last wrote it (None without one)."""
    try:
        with open(ctx.ws.path(SAVED), encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


def current(ctx: Ctx) -> dict:
    """The model: the daemon's when it runs, else built now (read-only)."""
    from orch.workflow.status import daemon_state

    found = read(ctx)
    if found is not None and daemon_state(ctx)["running"]:
        return found
    model = build(ctx)
    model["at"] = time.time()
    return model




class Reader:
    """The model as the dashboards take it: the daemon's file when it runs and changed (a stat), else built here
    (read-only, no pass). ``read()`` returns the model's text when it changed since the last call, else None; it
    opens its own context each time (a dashboard reads from a thread of its own; sqlite is per thread)."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self.text = ""
        self.from_daemon = False
        self._stamp: float | None = None

    def read(self) -> str | None:
        from orch.workspace import daemon_pid

        self.from_daemon = daemon_pid(self.ws) is not None
        if self.from_daemon:  # a stat while nothing changed: no context, no database
            try:
                stamp: float | None = os.stat(self.ws.path(SAVED)).st_mtime
            except OSError:
                stamp = None
            if stamp is not None and stamp == self._stamp:
                return None
            self._stamp = stamp
        else:
            self._stamp = None
        try:
            ctx = Ctx(self.ws)
        except OrchError as exc:
            found: dict = {"error": str(exc)}
        else:
            try:
                found = (read(ctx) or build(ctx)) if self.from_daemon else build(ctx)
            except OrchError as exc:
                found = {"error": str(exc)}
            finally:
                ctx.close()
        text = json.dumps({k: v for k, v in found.items() if k != "at"}, sort_keys=True)
        if text == self.text:
            return None
        self.text = text
        return text

    @property
    def every(self) -> float:
        """Seconds until the next look: a stat while the daemon writes the model, else a build each second."""
        return 0.1 if self.from_daemon else 1.0


async def follow(reader: Reader, changed: Callable[[str], object]) -> None:
    """Call ``changed`` with the model's text whenever it changes: woken by the kernel when the daemon renames a
    new model into place (inotify on ``.orch/``; a look every 5 s as well), else read each ``reader.every``."""
    import asyncio

    from orch.fswatch import Watcher

    watcher = Watcher([reader.ws.state])
    loop = asyncio.get_running_loop()
    wake = asyncio.Event()
    fd = watcher.fileno()
    if fd is not None:
        loop.add_reader(fd, wake.set)
    try:
        while True:
            text = await asyncio.to_thread(reader.read)
            if text is not None:
                changed(text)
            wake.clear()
            try:
                await asyncio.wait_for(wake.wait(), 5.0 if fd is not None and reader.from_daemon else reader.every)
            except TimeoutError:
                pass
            watcher.changes()  # (drained: the next read looks at the model itself)
    finally:
        if fd is not None:
            loop.remove_reader(fd)
        watcher.close()
