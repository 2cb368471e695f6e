"""Many hosts, the workspace's side: tasks placed on hosts instead of started here, and their records copied back.

With ``[cluster]`` configured, the pass starts no coder itself: each task it would start gets a Temporal workflow
(``fleet/workflows.py``) that places it on a host (front matter ``host:`` / ``needs:``, else free places). The host's
orch runs the task as on one machine and reports its record; the daemon applies each report here, once: the
host's status lines (each by its place in the host's log: a report repeated adds nothing), its summary, its state
(event ``host reports``), and once the task is ready its branch (fetched from ``refs/orch/wip/<task>``) and dossier.
The task files, dossiers and the database stay here: hosts never write them. A task on a host is not the local
pass's (no local worker, no local review loop) until its host is done with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from orch import fleet, git
from orch import slug as slugs
from orch.errors import OrchError
from orch.lifecycle import Actor, TaskEvent, TaskState
from orch.record import replace
from orch.store.fleet import HostedRow
from orch.workflow import tasks as T
from orch.workflow.context import Ctx

R = TypeVar("R")
RECONNECT = 5.0  # seconds between two tries of a cluster's server that does not answer
REMOTE = "origin"  # a host's clone calls the repository it was cloned from "origin"


def on(ctx: Ctx) -> bool:
    return bool(ctx.cfg.cluster.address)


def hosted(ctx: Ctx) -> set[str]:
    """Tasks whose host has them now: not the local pass's."""
    return set(ctx.store.all_hosted(live_only=True)) if on(ctx) else set()


def link(ctx: Ctx):  # noqa: ANN201 - an engine.Link (its module imports temporalio)
    from orch.fleet.engine import Link

    return Link.from_config(ctx.cfg.cluster, identity=f"orch workspace {ctx.ws.id}@{os.uname().nodename}")


def names(ctx: Ctx) -> dict[str, str]:
    from orch.fleet import workflows as wf

    c = ctx.cfg.cluster.name
    return {"cluster": c, "registry": wf.registry_id(c), "shared_queue": wf.shared_queue(c),
            "workspace_queue": wf.workspace_queue(c, ctx.ws.id)}


def run_async(ctx: Ctx, work: Callable[[Any], Awaitable[R]]) -> R:
    """``work(client)`` on the daemon's cluster loop when this process has one, else on a connection of its own."""
    runtime: Runtime | None = getattr(ctx, "fleet", None)
    if runtime is not None:
        return runtime.call(work)

    async def once() -> R:
        from orch.fleet.engine import connect

        client = await connect(link(ctx))
        return await work(client)

    return asyncio.run(once())


# -- placing ------------------------------------------------------------------------------------------------------


def spec_for(ctx: Ctx, task: T.Task) -> dict:
    try:
        with open(ctx.ws.config_file, encoding="utf-8") as fh:
            config = fh.read()
    except OSError:
        config = ""
    base = task.base or ctx.cfg.base or git.head_branch(ctx.ws.root) or "main"
    want = fleet.Want(task.slug, str(task.front.get("host", "")), tuple(task.front.get("needs", [])),
                      protocol=fleet.PROTOCOL)
    return {**names(ctx), "want": want.as_dict(), "text": task.doc.person, "config": config, "base": base,
            "heartbeat": ctx.cfg.cluster.heartbeat, "workspace": ctx.ws.id}


def dispatch(ctx: Ctx, tasks: dict[str, T.Task], slugs: list[str]) -> list[str]:
    """A workflow for each task the pass would start here: placed on a host by the cluster. Returns the tasks
    handed over; starting one again (its workflow runs already) changes nothing."""
    from orch.fleet import workflows as wf

    specs = {slug: spec_for(ctx, tasks[slug]) for slug in slugs}
    ids = {slug: wf.task_workflow_id(ctx.cfg.cluster.name, ctx.ws.id, slug) for slug in slugs}

    async def start(client: Any) -> list[str]:  # noqa: ANN401
        from orch.fleet import engine

        # (side by side: one round trip's time for all of them)
        await engine.start_workflows(client, "orch.task",
                                     [(ids[slug], specs[slug], specs[slug]["shared_queue"]) for slug in slugs])
        return slugs

    try:
        handed = run_async(ctx, start) if slugs else []
    except OrchError:
        raise
    except Exception as exc:  # noqa: BLE001 - the engine's errors, in one line: the pass goes on without them
        raise OrchError(f"the cluster did not take {len(slugs)} task(s): {type(exc).__name__}: {exc}") from None
    for slug in handed:
        if ctx.store.hosted(slug) is None or ctx.store.hosted(slug).ended:  # type: ignore[union-attr]
            ctx.store.put_hosted(HostedRow(slug, ids[slug], "", 0, -1, 0, "", "", False, time.time()))
        T.record(ctx, slug, status="handed to the cluster: placing it on a host", waiting_for="a host")
        ctx.event("fleet", f"workflow {ids[slug]} started", task=slug)
    return handed


# -- reports from the hosts ---------------------------------------------------------------------------------------


def apply(ctx: Ctx, r: dict) -> str:
    """One report of a task's workflow, applied once (a repeat, or an older one, changes nothing). Returns a line
    for the daemon's output ("" when nothing changed)."""
    slug, kind, run = str(r["slug"]), str(r.get("kind", "report")), int(r.get("run", 0))
    if not os.path.exists(T.task_path(ctx, slug)):
        recorded = ctx.store.task_row(slug)
        if os.path.exists(os.path.join(ctx.cfg.done_path, slug + ".md")) or recorded is None or (
                recorded.state == TaskState.DONE):
            ctx.store.drop_hosted(slug)  # closed meanwhile
            return ""
        raise OrchError(f"{slug}: its task file is missing for now; the report is applied when it is back")
    row = ctx.store.hosted(slug) or HostedRow(slug, str(r.get("workflow", "")), "", 0, -1, 0, "", "", False, 0.0)
    if run < row.run:
        return ""  # from a placement that is over
    host = str(r.get("host", "") or row.host)
    uid = f"fleet:{r.get('workflow', row.workflow)}:{run}:{kind}"
    if kind == "waiting":
        T.record(ctx, slug, waiting_for=f"a host: {r.get('why', '')}")
        return ""
    if kind == "placed":
        again = " again (its host was lost)" if r.get("resumed") else ""
        T.record(ctx, slug, status=f"placed on host {host}{again}", uid=uid, host=host, waiting_for=None)
        if run > row.run:  # (a report of this run may have come first: it is kept)
            row = replace(row, run=run, seq=-1, lines=0)
        ctx.store.put_hosted(replace(row, host=host, ended=False, at=time.time()))
        return f"{slug}: placed on host {host}{again}"
    if kind == "lost":
        T.move(ctx, slug, TaskState.LOST, TaskEvent.HOST_REPORTS, Actor.PASS, uid=uid,
               status=f"{r.get('why', 'its host was lost')}: placing it on another host, from its pushed work",
               problem=str(r.get("why", "")))
        ctx.store.put_hosted(replace(row, run=run, at=time.time()))
        return f"{slug}: host {host} lost; placing it again"
    if kind == "failed":
        T.move(ctx, slug, TaskState.BLOCKED, TaskEvent.HOST_REPORTS, Actor.PASS, uid=uid,
               status=f"the host could not run it: {r.get('why', '')}", problem=str(r.get("why", "")))
        ctx.store.put_hosted(replace(row, run=run, ended=True, at=time.time()))
        return f"{slug}: failed on host {host}"
    if kind == "closed":
        ctx.store.drop_hosted(slug)
        return ""
    seq = int(r.get("seq", 0))
    if (run, seq) <= (row.run, row.seq):
        return ""  # applied already
    # the host's status lines it had not sent before (from ``status_from``); each by its place in the host's log
    start, lines = int(r.get("status_from", 0)), list(r.get("status", []))
    had = row.lines if run == row.run else 0
    for i, line in enumerate(lines, start=start):
        if i < had:
            continue
        stamp, text = _split(line)
        T.record(ctx, slug, status=f"on {host}: {text}", at=T.parse_iso(stamp), uid=f"fleet:{row.workflow}:{run}:line:{i}")
    fields: dict[str, str | None] = {
        k: v for k, v in (_field(line) for line in r.get("summary", [])) if k and k not in _OWN}
    current = ctx.store.task_row(slug)
    for key in (current.fields if current is not None else {}):  # what the host's summary no longer says
        if key not in fields and key not in _KEPT:
            fields[key] = None
    state = str(r.get("state", ""))
    head = str(r.get("head", "") or row.head)
    final = state in fleet.FINAL
    if state == TaskState.READY:
        _take_branch(ctx, slug, head)
        if _take_dossier(ctx, slug, r):
            from orch.workflow import dossier

            fields["dossier"] = dossier.paths(ctx, slug)[0]  # (the host's line names its own copy)
    fields["host"] = host
    try:
        wanted = TaskState(state)
    except ValueError:
        wanted = None
    if wanted is not None and wanted != TaskState.QUEUED:
        T.move(ctx, slug, wanted, TaskEvent.HOST_REPORTS, Actor.PASS, summary=fields)
    else:
        T.record(ctx, slug, summary=fields)
    ctx.store.put_hosted(replace(row, host=host, run=run, seq=seq, lines=max(had, start + len(lines)), state=state,
                                 head=head, ended=final, at=time.time()))
    return f"{slug}: {state} on host {host}" if state != row.state else ""


# summary lines that are the workspace's own (its state moves through the lifecycle; its meta lines are its own)
_OWN = ("state", "session", "worktree", "branch", "host")
# the workspace's own summary fields, kept whatever the host's summary says
_KEPT = ("host", "pr state", "next", "pr")


def _split(line: str) -> tuple[str, str]:
    body = line[2:] if line.startswith("- ") else line
    stamp, _, text = body.partition(" ")
    return (stamp, text) if T.parse_iso(stamp) is not None else ("", body)


def _field(line: str) -> tuple[str, str]:
    key, sep, value = line.partition(":")
    return (key.strip(), value.strip()) if sep else ("", "")


def _take_branch(ctx: Ctx, slug: str, head: str) -> None:
    """The task's branch here, at the head its host pushed (refs/orch/wip/<task> on the cluster's remote)."""
    from orch.fleet import wip

    branch = T.branch_of(ctx, slug)
    wip.fetch(ctx.ws.root, ctx.cfg.cluster.remote, slug, check=True)
    sha = git.rev(ctx.ws.root, wip.wip_ref(slug))
    if head and sha != head:
        raise OrchError(f"{slug}: the remote's {wip.wip_ref(slug)} is {sha}, not the head {head} its host reported")
    git.run(ctx.ws.root, "branch", "--force", "--", branch, sha or head)


def _take_dossier(ctx: Ctx, slug: str, r: dict) -> bool:
    from orch.files import atomic_write
    from orch.workflow import dossier

    md, js = dossier.paths(ctx, slug)
    for path, key in ((md, "dossier_md"), (js, "dossier_json")):
        if r.get(key):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            atomic_write(path, str(r[key]).encode())
    return bool(r.get("dossier_md"))


# -- hosts -------------------------------------------------------------------------------------------------


def hosts(ctx: Ctx) -> tuple[list[fleet.Host], dict[str, str], float]:
    """The hosts as the registry knows them, what each holds, and the registry's clock."""
    reg = names(ctx)["registry"]

    async def ask(client: Any) -> dict:  # noqa: ANN401
        from orch.fleet import engine

        return await engine.query(client, reg, "hosts") or {"hosts": [], "claims": {}, "now": time.time()}

    got = run_async(ctx, ask)
    return [fleet.Host.from_dict(h) for h in got["hosts"]], dict(got["claims"]), float(got["now"])


# -- the daemon's part --------------------------------------------------------------------------------------------


class Runtime:
    """The daemon's connection to the cluster: a loop on its own thread that polls the shared queue (the workflows
    run wherever a poller lives) and the workspace's own queue (the reports, applied here one at a time)."""

    def __init__(self, ctx: Ctx, say: Callable[[str], None]) -> None:
        from orch.fleet.engine import Loop

        self.ctx, self.say = ctx, say
        self.loop = Loop()
        self.client: Any = None
        self.pollers: list[Any] = []

    def start(self) -> None:
        """Connect and poll; a server that does not answer is said once and tried again in the background (the
        daemon runs meanwhile: tasks wait to be handed over, reports wait in the server)."""
        from orch.fleet.engine import ClusterError, connect

        try:
            client = self.loop.call(connect(link(self.ctx)))
        except ClusterError as exc:
            self.say(f"{exc}; trying again every {RECONNECT:g} s")
            self.ctx.event("fleet", str(exc))
            self.loop.spawn(self._reconnect())
            return
        self._poll(client)

    async def _reconnect(self) -> None:
        from orch.fleet.engine import ClusterError, connect

        while True:
            await asyncio.sleep(RECONNECT)
            try:
                client = await connect(link(self.ctx))
            except ClusterError:
                continue
            self.say(f"connected to the cluster's server at {self.ctx.cfg.cluster.address}")
            self._poll(client)
            return

    def _poll(self, client: Any) -> None:  # noqa: ANN401 - a temporalio Client
        from orch.fleet.engine import workers

        self.pollers = workers(client, link(self.ctx), [(names(self.ctx)["workspace_queue"], [self._apply()])])
        self.client = client
        for w in self.pollers:
            self.loop.spawn(self._watched(w))

    async def _watched(self, poller: Any) -> None:  # noqa: ANN401 - a temporalio Worker
        try:
            await poller.run()
        except Exception as exc:  # noqa: BLE001 - said: reports stop being applied until the daemon starts again
            self.say(f"the cluster's poller {poller.task_queue} stopped: {exc}; restart the daemon (`orch stop`, "
                     "`orch run --detach`)")
            self.ctx.event("fleet", f"poller {poller.task_queue} stopped: {exc}")

    def call(self, work: Callable[[Any], Awaitable[R]]) -> R:
        if self.client is None:
            raise OrchError(f"the cluster's server at {self.ctx.cfg.cluster.address} does not answer yet (the daemon "
                            "tries again every few seconds)")
        return self.loop.call(work(self.client))

    def stop(self) -> None:
        if self.pollers:
            try:
                self.loop.call(asyncio.gather(*(w.shutdown() for w in self.pollers), return_exceptions=True), 30)
            except Exception:  # noqa: BLE001, S110 - stopping anyway
                pass
        self.loop.stop()

    def _apply(self) -> Callable[[dict], str]:
        from orch.fleet import engine
        from orch.fleet import workflows as wf
        from orch.locks import hold

        root = self.ctx.ws.root

        def apply_report(report: dict) -> str:
            from orch.workspace import Workspace

            ctx = Ctx(Workspace(root))
            line = None
            try:
                for _ in range(30):  # (heartbeating while a pass holds the lock: a daemon killed meanwhile is seen)
                    with hold(ctx.lock_path("scan"), wait=2) as got:
                        if got:
                            line = apply(ctx, report)
                            break
                    engine.heartbeat()
                if line is None:
                    raise OrchError("the scan lock is held too long; the report is applied on the next try")
            except Exception as exc:  # tried again by the engine (with growing pauses) until it goes in: said
                n = engine.attempt()  # on the first failure and every tenth, in the log and the daemon's output
                if n == 1 or n % 10 == 0:
                    slug = str(report.get("slug", ""))
                    said = (f"cannot apply host {report.get('host') or '?'}'s report for {slug} (try {n}): "
                            f"{type(exc).__name__}: {exc}; it is tried again until it goes in, and the task's "
                            "later reports wait behind it")
                    self.say(said)
                    with contextlib.suppress(Exception):
                        ctx.event("fleet", said, task=slug if slugs.is_valid(slug) else "")
                raise
            finally:
                ctx.close()
            if line:
                self.say(line)
            return line

        return engine.activity_of(wf.APPLY, apply_report)
