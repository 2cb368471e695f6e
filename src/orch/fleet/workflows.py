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

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError, TimeoutType
from temporalio.exceptions import TimeoutError as ActivityTimeout

from orch import fleet

PLACE, RUN, APPLY, ROUTE = "orch.place", "orch.run_task", "orch.apply", "orch.route"
HOST_STOPPING = "HostStopping"  # a run_task that ends because its host stops: the task is placed elsewhere
SHUTDOWN = "WorkerShutdown"  # (the SDK's failure of an activity its worker's shutdown cut short: a stopping host)
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
        self.outbox: list[dict] = []  # reports for the workspace, applied there in this order, one at a time
        self.closing = False
        self.done = False
        self.host = ""
        self.run_no = 0
        self.waiting = ""
        self.spec: dict = {}

    @workflow.signal(name="progress")
    def progress(self, report: dict) -> None:
        if int(report.get("run", 0)) == self.run_no and fleet.snapshot_newer(self.latest, report):
            self.latest = report
            self._post({**report, "kind": "report"})

    @workflow.signal(name="close")
    def close(self) -> None:
        self.closing = True

    @workflow.query(name="where")
    def where(self) -> dict:
        return {"host": self.host, "run": self.run_no, "waiting": self.waiting, "outbox": len(self.outbox)}

    @workflow.run
    async def run(self, spec: dict) -> dict:
        self.spec = spec
        sender = asyncio.create_task(self._send())
        outcome = await self._place_and_run(spec)
        self.done = True
        await sender  # every report applied in the workspace (it waits for a daemon that is down)
        return {"outcome": outcome, "host": self.host, "run": self.run_no}

    async def _place_and_run(self, spec: dict) -> str:
        avoid: list[str] = list(spec.get("avoid", []))
        beat = float(spec["heartbeat"])
        self.run_no = int(spec.get("run_base", 0))
        pause = beat / 3
        while not self.closing:
            # (a claim is the workflow's: two workspaces' tasks of the same name never share one)
            got = await workflow.execute_activity(
                PLACE, {"registry": spec["registry"],
                        "want": {**spec["want"], "slug": workflow.info().workflow_id, "avoid": avoid},
                        "dead_after": beat * 2},
                task_queue=spec["shared_queue"], start_to_close_timeout=timedelta(seconds=30))
            if not got["host"]:
                if got["why"] != self.waiting:
                    self.waiting, pause = got["why"], beat / 3
                    self._post({"kind": "waiting", "why": self.waiting})
                try:  # asked again after a pause that grows to a minute (a task may wait for its host all night)
                    await workflow.wait_condition(lambda: self.closing, timeout=timedelta(seconds=pause))
                except TimeoutError:
                    pass
                pause = min(pause * 1.5, 60.0)
                if workflow.info().is_continue_as_new_suggested() and not self.outbox:
                    workflow.continue_as_new({**spec, "avoid": avoid, "run_base": self.run_no})
                continue
            self.host, self.waiting = got["host"], ""
            self.run_no += 1
            self.latest = None
            # the host starts at once: the workspace hears of it when it can (its daemon may be down)
            self._post({"kind": "placed", "host_info": got["host_info"], "resumed": bool(avoid)})
            try:
                outcome = await self._run_on(spec, beat, bool(avoid), avoid[-1] if avoid else "")
            finally:
                await self._release(spec)
            if outcome == "lost":
                avoid.append(self.host)
                self._post({"kind": "lost", "why": f"host {self.host} stopped heartbeating"})
                continue
            return outcome
        await self._release(spec)
        self._post({"kind": "closed"})
        return "closed"

    async def _run_on(self, spec: dict, beat: float, resumed: bool, lost_on: str) -> str:
        handle = workflow.start_activity(
            RUN, {**spec, "host": self.host, "run": self.run_no, "resumed": resumed, "lost_on": lost_on},
            task_queue=host_queue(spec["cluster"], self.host),
            heartbeat_timeout=timedelta(seconds=beat),
            schedule_to_start_timeout=timedelta(seconds=beat * 2),
            start_to_close_timeout=timedelta(days=30),
            retry_policy=RetryPolicy(maximum_attempts=1))
        await workflow.wait_condition(lambda: handle.done() or self.closing)
        cancelled = not handle.done()
        if cancelled:
            handle.cancel()
        try:
            final = await handle
        except ActivityError as exc:
            cause = exc.cause
            if isinstance(cause, ActivityTimeout) and cause.type in (TimeoutType.HEARTBEAT, TimeoutType.SCHEDULE_TO_START):
                return "closed" if cancelled else "lost"
            if isinstance(cause, ApplicationError) and cause.type in (HOST_STOPPING, SHUTDOWN):
                return "closed" if cancelled else "lost"
            if isinstance(cause, CancelledError):  # asked for here (closed), or not (its host's worker ended)
                return "closed" if cancelled else "lost"
            self._post({"kind": "failed", "why": str(cause or exc)})
            return "failed"
        except CancelledError:
            return "closed" if cancelled else "lost"
        self._post({**final, "kind": "report"})
        return str(final.get("state", ""))

    def _post(self, report: dict) -> None:
        """A report for the workspace, after those before it; a newer record of the run replaces one still waiting
        (a record is whole: the newest says all the older ones did)."""
        body = {"seq": -1, **report, "slug": self.spec["want"]["slug"], "workflow": workflow.info().workflow_id,
                "host": self.host, "run": self.run_no}
        last = self.outbox[-1] if len(self.outbox) > 1 else None  # (the first is being applied: left alone)
        if last is not None and body["kind"] == "report" and last["kind"] == "report" and last["run"] == body["run"]:
            a, b = int(last.get("status_from", 0)), int(body.get("status_from", 0))
            if b == a + len(last.get("status", [])):  # its lines follow the waiting one's: one report with both
                self.outbox[-1] = {**body, "status_from": a, "status": [*last.get("status", []), *body.get("status", [])]}
                return
            if b <= a:  # it says all the waiting one did
                self.outbox[-1] = body
                return
        self.outbox.append(body)

    async def _send(self) -> None:
        while True:
            await workflow.wait_condition(lambda: bool(self.outbox) or self.done)
            if not self.outbox:
                return
            # (a daemon killed while applying it: its heartbeat stops, and the next daemon applies it again)
            await workflow.execute_activity(APPLY, self.outbox[0], task_queue=self.spec["workspace_queue"],
                                            start_to_close_timeout=timedelta(seconds=90),
                                            heartbeat_timeout=timedelta(seconds=10))
            self.outbox.pop(0)

    async def _release(self, spec: dict) -> None:
        await workflow.get_external_workflow_handle(spec["registry"]).signal("release", workflow.info().workflow_id)


@workflow.defn(name="orch.route")
class RouteCall:
    """`orch send/capture/exec ...` for a task on a host: one activity on that host's queue (the host's orch runs
    the command in its clone); a host that does not take it within a few seconds (``wait``: that many) is not
    answering. A close waits for a host that is away as long as it takes (days): it runs once the host is back."""

    @workflow.run
    async def run(self, req: dict) -> dict:
        # when it was asked (the server's clock): a host refuses it for a task placed there after that
        req = {**req, "asked_at": workflow.now().timestamp()}
        try:
            return await workflow.execute_activity(
                ROUTE, req, task_queue=req["queue"],
                schedule_to_start_timeout=timedelta(seconds=float(req.get("wait", 10))),
                start_to_close_timeout=timedelta(seconds=float(req.get("timeout", 60)) + 45),
                retry_policy=RetryPolicy(maximum_attempts=1))
        except ActivityError as exc:
            cause = exc.cause
            if isinstance(cause, ActivityTimeout) and cause.type == TimeoutType.SCHEDULE_TO_START:
                return {"code": 1, "out": "", "err": "orch: the task's host is not answering (not polling its queue)\n"}
            return {"code": 1, "out": "", "err": f"orch: the task's host failed: {cause or exc}\n"}
