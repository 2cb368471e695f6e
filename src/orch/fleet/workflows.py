"""The cluster's two Temporal workflows: the registry of hosts, and one workflow per task in progress.

``Registry`` (one per cluster, id ``<name>.hosts``): every host's heartbeat (a signal every few seconds, with its
labels, capacity and load), the placement of each task (an update: answered one at a time, so two tasks never take
the last free place of a host together) and its release. ``TaskRun`` (one per task, id ``<name>.<workspace>.<task>``):
asks the registry for a host, runs the task there as one long activity that heartbeats, hands each report of the
host to the workspace (an activity on the workspace's own queue: while its daemon is down the reports wait in the
server), and when the host stops heartbeating places the task on another host, which starts again from the work
in progress the first one pushed. Both run on the cluster's shared queue, polled by every host and by the
workspace's daemon: a workflow goes on while any of them lives.

Workflow code is replayed: it reads no clock but ``workflow.now()``, no file, no network; everything else is an
activity (``fleet/host.py`` runs the host's, ``workflow/fleet.py`` the workspace's).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError, TimeoutType
from temporalio.exceptions import TimeoutError as ActivityTimeout

from orch import fleet

PLACE, RUN, APPLY, ROUTE = "orch.place", "orch.run_task", "orch.apply", "orch.route"
HOST_STOPPING = "HostStopping"  # a run_task that ends because its host stops: the task is placed elsewhere
HISTORY_LIMIT = 2000  # events before the registry starts again with its state (continue-as-new)


def shared_queue(cluster: str) -> str:
    return f"{cluster}.shared"


def host_queue(cluster: str, host: str) -> str:
    return f"{cluster}.host.{host}"


def workspace_queue(cluster: str, workspace: str) -> str:
    return f"{cluster}.ws.{workspace}"


def registry_id(cluster: str) -> str:
    return f"{cluster}.hosts"


def task_workflow_id(cluster: str, workspace: str, slug: str) -> str:
    return f"{cluster}.{workspace}.{slug}"


@workflow.defn(name="orch.hosts")
class Registry:
    def __init__(self) -> None:
        self.hosts: dict[str, dict] = {}
        self.claims: dict[str, str] = {}

    @workflow.run
    async def run(self, state: dict) -> None:
        self.hosts = dict(state.get("hosts", {}))
        self.claims = dict(state.get("claims", {}))
        await workflow.wait_condition(
            lambda: workflow.info().get_current_history_length() > HISTORY_LIMIT
            or workflow.info().is_continue_as_new_suggested())
        await workflow.wait_condition(workflow.all_handlers_finished)
        workflow.continue_as_new({"hosts": self.hosts, "claims": self.claims})

    @workflow.signal(name="beat")
    def beat(self, host: dict) -> None:
        self.hosts[str(host["name"])] = {**host, "seen": workflow.now().timestamp()}

    @workflow.signal(name="release")
    def release(self, slug: str) -> None:
        self.claims.pop(slug, None)

    @workflow.update(name="place")
    def place(self, ask: dict) -> dict:
        want = fleet.Want.from_dict(ask["want"])
        hosts = [fleet.Host.from_dict(h) for h in self.hosts.values()]
        name, why = fleet.place(want, hosts, self.claims, workflow.now().timestamp(), float(ask["dead_after"]))
        if name:
            self.claims[want.slug] = name
        return {"host": name, "why": why, "host_info": self.hosts.get(name, {})}

    @workflow.query(name="hosts")
    def listing(self) -> dict:
        return {"hosts": list(self.hosts.values()), "claims": dict(self.claims), "now": workflow.now().timestamp()}


@workflow.defn(name="orch.task")
class TaskRun:
    def __init__(self) -> None:
        self.latest: dict | None = None  # the newest report of the current run
        self.applied: dict | None = None  # the newest report the workspace has
        self.closing = False
        self.host = ""
        self.run_no = 0
        self.waiting = ""

    @workflow.signal(name="progress")
    def progress(self, report: dict) -> None:
        if int(report.get("run", 0)) == self.run_no and fleet.snapshot_newer(self.latest, report):
            self.latest = report

    @workflow.signal(name="close")
    def close(self) -> None:
        self.closing = True

    @workflow.query(name="where")
    def where(self) -> dict:
        return {"host": self.host, "run": self.run_no, "waiting": self.waiting}

    @workflow.run
    async def run(self, spec: dict) -> dict:
        avoid: list[str] = list(spec.get("avoid", []))
        beat = float(spec["heartbeat"])
        while not self.closing:
            got = await workflow.execute_activity(
                PLACE, {"registry": spec["registry"], "want": {**spec["want"], "avoid": avoid},
                        "dead_after": beat * 2},
                task_queue=spec["shared_queue"], start_to_close_timeout=timedelta(seconds=30))
            if not got["host"]:
                if got["why"] != self.waiting:
                    self.waiting = got["why"]
                    await self._apply(spec, {"kind": "waiting", "why": self.waiting})
                try:
                    await workflow.wait_condition(lambda: self.closing, timeout=timedelta(seconds=beat / 3))
                except TimeoutError:
                    pass
                continue
            self.host, self.waiting = got["host"], ""
            self.run_no += 1
            self.latest = None
            await self._apply(spec, {"kind": "placed", "host_info": got["host_info"], "resumed": bool(avoid)})
            outcome = await self._run_on(spec, beat, bool(avoid))
            if outcome == "lost":
                lost = self.host
                avoid.append(lost)
                await self._release(spec)
                await self._apply(spec, {"kind": "lost", "why": f"host {lost} stopped heartbeating"})
                continue
            await self._release(spec)
            return {"outcome": outcome, "host": self.host, "run": self.run_no}
        await self._release(spec)
        await self._apply(spec, {"kind": "closed"})
        return {"outcome": "closed", "host": self.host, "run": self.run_no}

    async def _run_on(self, spec: dict, beat: float, resumed: bool) -> str:
        handle = workflow.start_activity(
            RUN, {**spec, "host": self.host, "run": self.run_no, "resumed": resumed},
            task_queue=host_queue(spec["cluster"], self.host),
            heartbeat_timeout=timedelta(seconds=beat),
            schedule_to_start_timeout=timedelta(seconds=beat * 2),
            start_to_close_timeout=timedelta(days=30),
            retry_policy=RetryPolicy(maximum_attempts=1))
        applying = None
        cancelled = False
        while True:
            def due(a: Any = applying, c: bool = cancelled) -> bool:
                return bool(handle.done() or (self.closing and not c) or (a is not None and a.done())
                            or (a is None and self.latest is not None
                                and fleet.snapshot_newer(self.applied, self.latest)))

            await workflow.wait_condition(due)
            if applying is not None and applying.done():
                await applying
                applying = None
            if self.closing and not cancelled:
                handle.cancel()
                cancelled = True
            if handle.done():
                break
            if applying is None and self.latest is not None and fleet.snapshot_newer(self.applied, self.latest):
                report = self.latest
                applying = self._start_apply(spec, report)
                self.applied = report
        if applying is not None:
            await applying
        try:
            final = await handle
        except ActivityError as exc:
            cause = exc.cause
            if isinstance(cause, ActivityTimeout) and cause.type in (TimeoutType.HEARTBEAT, TimeoutType.SCHEDULE_TO_START):
                return "lost"
            if isinstance(cause, ApplicationError) and cause.type == HOST_STOPPING:
                return "lost"
            if isinstance(cause, CancelledError) or cancelled:
                return "closed"
            await self._apply(spec, {"kind": "failed", "why": str(cause or exc)})
            return "failed"
        await self._apply(spec, {**final, "kind": "report"})
        return str(final.get("state", ""))

    def _start_apply(self, spec: dict, report: dict):  # noqa: ANN202 - an activity handle
        body = {"kind": "report", **report} if "kind" not in report else report
        return workflow.start_activity(
            APPLY, {**body, "slug": spec["want"]["slug"], "workflow": workflow.info().workflow_id,
                    "host": self.host, "run": self.run_no},
            task_queue=spec["workspace_queue"], start_to_close_timeout=timedelta(seconds=120))

    async def _apply(self, spec: dict, report: dict) -> None:
        await self._start_apply(spec, {"seq": -1, **report})

    async def _release(self, spec: dict) -> None:
        await workflow.get_external_workflow_handle(spec["registry"]).signal("release", spec["want"]["slug"])


@workflow.defn(name="orch.route")
class RouteCall:
    """`orch send/capture/exec ...` for a task on a host: one activity on that host's queue (the host's orch runs
    the command in its clone); a host that does not take it within a few seconds is not answering."""

    @workflow.run
    async def run(self, req: dict) -> dict:
        try:
            return await workflow.execute_activity(
                ROUTE, req, task_queue=req["queue"], schedule_to_start_timeout=timedelta(seconds=10),
                start_to_close_timeout=timedelta(seconds=float(req.get("timeout", 60)) + 45),
                retry_policy=RetryPolicy(maximum_attempts=1))
        except ActivityError as exc:
            cause = exc.cause
            if isinstance(cause, ActivityTimeout) and cause.type == TimeoutType.SCHEDULE_TO_START:
                return {"code": 1, "out": "", "err": "orch: the task's host is not answering (not polling its queue)\n"}
            return {"code": 1, "out": "", "err": f"orch: the task's host failed: {cause or exc}\n"}
