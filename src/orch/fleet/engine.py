"""Temporal, the cluster's durable engine: the only module (with ``fleet/workflows.py``) that speaks to it.

A ``Link`` says where the server is and how to prove who we are (mTLS or an API key); ``connect`` opens a client;
``workers`` builds the pollers of a process (a host's, or the workspace daemon's); ``Loop`` runs them on an event
loop of their own beside synchronous code (the daemon's pass), and runs coroutines on it for that code.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import activity
from temporalio.client import Client, TLSConfig, WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from orch.errors import OrchError
from orch.fleet import workflows as wf
from orch.record import dataclass

T = TypeVar("T")
CONNECT_TIMEOUT = 15.0


class ClusterError(OrchError):
    """The Temporal server cannot be reached, or refused us."""


@dataclass(frozen=True)
class Link:
    address: str
    namespace: str = "default"
    cluster: str = "orch"
    tls_ca: str = ""
    tls_cert: str = ""
    tls_key: str = ""
    tls_server_name: str = ""
    api_key: str = ""
    identity: str = ""

    @classmethod
    def from_config(cls, cfg: Any, identity: str = "") -> Link:  # noqa: ANN401 - orch.config.ClusterConfig
        return cls(cfg.address, cfg.namespace, cfg.name, cfg.tls_ca, cfg.tls_cert, cfg.tls_key, cfg.tls_server_name,
                   os.environ.get(cfg.api_key_env, "") if cfg.api_key_env else "", identity)


def _read(path: str, what: str) -> bytes:
    try:
        with open(os.path.expanduser(path), "rb") as fh:
            return fh.read()
    except OSError as exc:
        raise ClusterError(f"cannot read the cluster's {what} {path}: {exc.strerror or exc}") from None


def tls_of(link: Link) -> TLSConfig | bool:
    if link.tls_ca or link.tls_cert or link.tls_key:
        if bool(link.tls_cert) != bool(link.tls_key):
            raise ClusterError("mTLS needs both tls_cert and tls_key (PEM files): set both, or neither")
        return TLSConfig(server_root_ca_cert=_read(link.tls_ca, "CA certificate") if link.tls_ca else None,
                         client_cert=_read(link.tls_cert, "certificate") if link.tls_cert else None,
                         client_private_key=_read(link.tls_key, "key") if link.tls_key else None,
                         domain=link.tls_server_name or None)
    return bool(link.api_key)  # Temporal Cloud's API keys go over TLS


async def connect(link: Link) -> Client:
    """A client of the cluster's server, or one line saying why not."""
    if not link.address:
        raise ClusterError("no cluster address: set [cluster] address in .orch/config.toml (or --address)")
    try:
        return await asyncio.wait_for(
            Client.connect(link.address, namespace=link.namespace, tls=tls_of(link), api_key=link.api_key or None,
                           identity=link.identity or None),
            CONNECT_TIMEOUT)
    except TimeoutError:
        raise ClusterError(f"the Temporal server at {link.address} did not answer in {CONNECT_TIMEOUT:.0f} s: "
                           "is it running, and is the address right?") from None
    except RuntimeError as exc:
        raise ClusterError(f"cannot connect to the Temporal server at {link.address}: {_why(str(exc), link)}") from None


def _why(text: str, link: Link) -> str:
    """The engine's connection error, said for a person (its own text is a Rust error's debug form)."""
    low = text.lower()
    tls = bool(link.tls_ca or link.tls_cert or link.api_key)
    if tls and any(k in low for k in ("close_notify", "certificate", "handshake", "tls", "unexpectedeof",
                                      "connectionreset", "connection reset", "brokenpipe", "broken pipe",
                                      "transport error", "connection closed")):
        return ("the server refused the TLS handshake: check that the certificate and key are the ones the cluster's "
                "CA signed, and the CA and server name are the server's")
    if "unauthenticated" in low or "permission" in low or "api key" in low:
        return "the server refused the credential (API key or certificate)"
    if "connection refused" in low or "dns" in low or "connect" in low and "error trying to connect" in low:
        return "nothing answers there (is the server running, and the address right?)"
    first = text.strip().splitlines()[0] if text.strip() else "unknown error"
    return first.removeprefix("Failed client connect: ")[:300]


def refused(exc: BaseException) -> str | None:
    """Why the server refused a call, when it did (an unknown credential, an unknown namespace)."""
    if isinstance(exc, RPCError) and exc.status in (RPCStatusCode.UNAUTHENTICATED, RPCStatusCode.PERMISSION_DENIED):
        return exc.message
    return None


def place_activity(client: Client) -> Callable[[dict], Awaitable[dict]]:
    """The activity that asks the registry for a host (one update: the registry answers them one at a time)."""

    @activity.defn(name=wf.PLACE)
    async def place(ask: dict) -> dict:
        handle = client.get_workflow_handle(ask["registry"])
        try:
            return await handle.execute_update("place", ask)
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                return {"host": "", "why": "no host has joined the cluster (start `orch host` on one)"}
            raise
        except WorkflowUpdateFailedError as exc:
            return {"host": "", "why": f"the registry refused: {exc.cause or exc}"}

    return place


def workers(client: Client, link: Link, queues: Sequence[tuple[str, Sequence[Callable]]],
            shared: bool = True) -> list[Worker]:
    """The pollers of one process: the shared queue (both workflows, and placement) when ``shared``, and each
    (queue, activities) given."""
    slots = 256  # a task's run on a host holds a thread for its whole life: as many threads as activity slots
    pool = ThreadPoolExecutor(max_workers=slots, thread_name_prefix="orch-activity")
    out = []
    if shared:
        # a workflow's next task goes first to the process that ran its last one (sticky); when that process is a
        # host that died, the server waits this long before any other poller takes it
        out.append(Worker(client, task_queue=wf.shared_queue(link.cluster), workflows=[wf.Registry, wf.TaskRun, wf.RouteCall],
                          activities=[place_activity(client)], workflow_runner=UnsandboxedWorkflowRunner(),
                          activity_executor=pool, sticky_queue_schedule_to_start_timeout=timedelta(seconds=1)))
    for queue, acts in queues:
        out.append(Worker(client, task_queue=queue, activities=list(acts), activity_executor=pool,
                          max_concurrent_activities=slots))
    return out


class Loop:
    """An event loop on a thread of its own: the cluster's client and pollers live there while synchronous code
    (the daemon's pass, an activity's thread) runs coroutines on it with ``call``."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="orch-cluster", daemon=True)
        self.thread.start()

    def call(self, coro: Awaitable[T], timeout: float | None = 60.0) -> T:
        future: Any = asyncio.run_coroutine_threadsafe(coro, self.loop)  # type: ignore[arg-type]
        return future.result(timeout)

    def spawn(self, coro: Awaitable[Any]) -> None:
        asyncio.run_coroutine_threadsafe(coro, self.loop)  # type: ignore[arg-type]

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


# -- the calls the workspace makes (workflow/fleet.py and workflow/remote.py speak Temporal only through these) --


async def start_workflows(client: Client, kind: str, starts: Sequence[tuple[str, dict, str]]) -> None:
    """Workflows of ``kind``, each (id, argument, task queue), side by side; one whose id runs already is left
    as it is."""
    from temporalio.common import WorkflowIDConflictPolicy

    await asyncio.gather(*(client.start_workflow(kind, arg, id=ident, task_queue=queue,
                                                 id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING)
                           for ident, arg, queue in starts))


async def start_anew(client: Client, kind: str, ident: str, arg: dict, queue: str, wait: float = 30.0) -> None:
    """A workflow started again under an id whose last run has ended; one still running (finishing: it waits for
    its last reports to be applied) is waited for first, up to ``wait`` seconds."""
    from temporalio.common import WorkflowIDConflictPolicy
    from temporalio.exceptions import WorkflowAlreadyStartedError

    for last in (False, True):
        try:
            await client.start_workflow(kind, arg, id=ident, task_queue=queue,
                                        id_conflict_policy=WorkflowIDConflictPolicy.FAIL)
            return
        except WorkflowAlreadyStartedError:
            if last:
                raise OrchError(f"workflow {ident} is still running: try again once it has ended") from None
            try:
                await asyncio.wait_for(client.get_workflow_handle(ident).result(), wait)
            except TimeoutError:
                raise OrchError(f"workflow {ident} is still running after {wait:.0f} s: try again later") from None
            except Exception:  # noqa: BLE001, S110 - it ended (failed or ended by hand): started anew below
                pass


async def query(client: Client, workflow_id: str, name: str) -> Any | None:  # noqa: ANN401
    """A workflow's query; None when no such workflow exists."""
    try:
        return await client.get_workflow_handle(workflow_id).query(name)
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return None
        raise


async def signal(client: Client, workflow_id: str, name: str) -> None:
    await client.get_workflow_handle(workflow_id).signal(name)


async def run_workflow(client: Client, kind: str, arg: dict, queue: str, timeout: float,
                       wait: float | None = None) -> Any:  # noqa: ANN401
    """A short workflow run to its end (an id of its own), and its result. ``wait``: seconds to wait for the result
    (None when it is not there by then: the workflow goes on without us, up to ``timeout``)."""
    import uuid

    handle = await client.start_workflow(kind, arg, id=f"{kind}-{uuid.uuid4().hex}", task_queue=queue,
                                         execution_timeout=timedelta(seconds=timeout))
    if wait is None:
        return await handle.result()
    try:  # (on timeout our wait for the result ends; the workflow goes on in the server)
        return await asyncio.wait_for(handle.result(), wait)
    except TimeoutError:
        return None


async def task_run_state(client: Client, workflow_id: str) -> tuple[str, dict | None]:
    """A task's workflow as a host sees it: ("running", where it is now: host and run), ("ended", its result:
    outcome, host and run) or ("gone", None) (no such workflow, or one that failed or was ended by hand)."""
    from temporalio.client import WorkflowExecutionStatus

    handle = client.get_workflow_handle(workflow_id)
    try:
        described = await handle.describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return "gone", None
        raise
    if described.status == WorkflowExecutionStatus.RUNNING:
        return "running", await handle.query("where")
    if described.status in (WorkflowExecutionStatus.COMPLETED, WorkflowExecutionStatus.CONTINUED_AS_NEW):
        return "ended", await handle.result()
    return "gone", None


def activity_of(name: str, function: Callable[[dict], Any]) -> Callable[[dict], Any]:
    """``function`` as the activity ``name`` (run in a thread of the pollers' pool)."""
    return activity.defn(name=name)(function)


def heartbeat() -> None:
    """From inside an activity: it is alive."""
    activity.heartbeat()


def attempt() -> int:
    """From inside an activity: which try of it this is (1, 2, ...)."""
    return int(activity.info().attempt)
