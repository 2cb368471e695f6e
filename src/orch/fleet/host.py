"""`orch host`: a machine that runs workers for the cluster.

It keeps its own clone of the repository (cloned from the git remote the workspace names), and in it the same orch
that runs on one machine: its own daemon (`orch run`), tmux server, sandboxes, spool and inbox, its own record of
the tasks placed here. It polls two Temporal task queues: its own (the activities of its tasks: run one, route a
command to one) and the cluster's shared one (the workflows, and placement). Every few seconds it signals its
heartbeat to the registry (labels, capacity, live workers).

A task placed here is one long activity (``run_task``, in ``fleet/taskrun.py``): the workspace's config and the
task's text are written into the clone, the task's branch is fetched from the work in progress a lost host pushed
(``refs/orch/wip/<task>``), and the clone's daemon does the rest. Meanwhile the activity heartbeats, pushes each new
head of the branch to ``refs/orch/wip/<task>``, and sends the task's record (state, summary, status lines) to the workflow each time it
changes; when the task is ready it sends the dossier and ends. Nothing a worker writes is run here or anywhere: the
workspace receives the record its orch wrote, as data.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any

from temporalio import activity
from temporalio.client import Client

from orch import fleet, git
from orch import slug as slugs
from orch.errors import OrchError
from orch.files import atomic_write
from orch.fleet import runs
from orch.fleet import workflows as wf
from orch.fleet.engine import ClusterError, Link, connect, refused, workers
from orch.fleet.taskrun import TaskRuns
from orch.record import dataclass

SWEEP = 10.0  # seconds between two looks at the copies of tasks this host no longer runs
# the commands a workspace may have a host's orch run for a task on it (closing, once the host is done with it)
ROUTED = ("send", "reply", "capture", "exec", "retry", "recover", "status", "check", "close")


@dataclass(frozen=True)
class Options:
    name: str
    link: Link
    folder: str
    remote: str = ""
    labels: tuple[str, ...] = ()
    max_workers: int = 4
    ssh: str = ""
    beat: float = 5.0
    socket: str = ""


class Host(TaskRuns):
    """The running host: its clone, its local daemon, its client (on the loop of the main thread)."""

    def __init__(self, opts: Options) -> None:
        self.opts = opts
        self.clone = os.path.join(opts.folder, "repo")
        self.socket = opts.socket or os.environ.get("ORCH_TMUX_SOCKET") or f"orch-host-{opts.name}"
        self.client: Client | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.daemon: subprocess.Popen | None = None
        self.lock = threading.Lock()
        self.git_lock = threading.Lock()
        self.stopping = threading.Event()
        self.runs_lock = threading.Lock()  # (a run starting, and a sweep closing an old copy of the same task)
        self.active: set[str] = set()  # the tasks whose run is in hand in this process

    # -- the clone and its daemon ------------------------------------------------------------------------------------

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ORCH_WORKER", "TMUX"))}
        env.pop("ORCH_WORKSPACE", None)
        if self.opts.link.api_key:  # the cluster's credential stays with `orch host`: no worker sees it
            for key, value in list(env.items()):
                if value == self.opts.link.api_key:
                    env.pop(key)
        env["ORCH_TMUX_SOCKET"] = self.socket
        return env

    def prepare(self) -> None:
        os.makedirs(self.opts.folder, exist_ok=True)
        if not os.path.isdir(os.path.join(self.clone, ".git")):
            if not self.opts.remote:
                raise OrchError(f"{self.clone} is not a clone yet: give the repository's URL once with --remote URL")
            git.run(self.opts.folder, "clone", "--quiet", "--", self.opts.remote, self.clone)
        if not os.path.isdir(os.path.join(self.clone, ".orch")):
            done = subprocess.run([sys.executable, "-m", "orch", "init", self.clone], env=self.env(),
                                  capture_output=True, timeout=120, check=False, stdin=subprocess.DEVNULL)
            if done.returncode != 0:
                raise OrchError(f"orch init in {self.clone} failed: {done.stderr.decode(errors='replace').strip()}")

    def start_daemon(self) -> None:
        log = open(os.path.join(self.clone, ".orch", "logs", "host-daemon.log"), "ab")  # noqa: SIM115 - the child's
        self.daemon = subprocess.Popen([sys.executable, "-m", "orch", "run"], cwd=self.clone, env=self.env(),
                                       stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()

    def stop_daemon(self) -> None:
        if self.daemon is not None and self.daemon.poll() is None:
            self.daemon.terminate()
            try:
                self.daemon.wait(30)
            except subprocess.TimeoutExpired:
                self.daemon.kill()
        self.daemon = None

    def use_config(self, text: str, base: str, remote: str) -> None:
        """The workspace's config for this clone (its tables for one machine only; the base is the remote's); the
        daemon starts again when it changed (workers keep running, as always when a daemon stops)."""
        wanted = fleet.host_config(text, f"refs/remotes/{remote}/{base}" if base else "", self.socket).encode()
        path = os.path.join(self.clone, ".orch", "config.toml")
        with self.lock:
            try:
                with open(path, "rb") as fh:
                    same = fh.read() == wanted
            except OSError:
                same = False
            if not same:
                atomic_write(path, wanted)
                self.stop_daemon()
            if self.daemon is None or self.daemon.poll() is not None:
                self.start_daemon()

    def running(self) -> int:
        try:
            from orch.mux.tmux import Tmux

            return sum(1 for p in Tmux(self.socket).list_panes() if p.is_agent and not p.dead)
        except OrchError:
            return 0

    def info(self) -> dict[str, object]:
        import orch

        return fleet.Host(self.opts.name, self.opts.labels, self.opts.max_workers, 0.0, self.opts.ssh, self.clone,
                          self.socket, self.running(), orch.__version__, fleet.PROTOCOL).as_dict()

    # -- calls onto the loop from an activity's thread ---------------------------------------------------------------

    def call(self, make: Callable[[Client], Any], timeout: float = 30.0) -> Any:  # noqa: ANN401
        assert self.client is not None and self.loop is not None
        return asyncio.run_coroutine_threadsafe(make(self.client), self.loop).result(timeout)

    # -- activities --------------------------------------------------------------------------------------------------

    def activities(self) -> list[Callable]:
        @activity.defn(name=wf.RUN)
        def run_task(spec: dict) -> dict:
            return self.run_task(spec)

        @activity.defn(name=wf.ROUTE)
        def route(req: dict) -> dict:
            return self.route(req)

        return [run_task, route]

    def keep_daemon(self) -> None:
        """The clone's daemon, started again if it ended (its workers are still there: it adopts them). Never
        waited for: while another task's run restarts it for a new config, this run goes on heartbeating."""
        if not self.lock.acquire(blocking=False):
            return
        try:
            if self.daemon is None or self.daemon.poll() is not None:
                self.start_daemon()
        finally:
            self.lock.release()

    def route(self, req: dict) -> dict:
        args = [str(a) for a in req.get("args", [])]
        if not args or args[0] not in ROUTED:
            return {"code": 2, "out": "", "err": f"orch: {args[0] if args else 'nothing'} is not routed to hosts\n"}
        from orch import config as config_mod
        from orch.workspace import Workspace

        slug = str(req.get("slug", ""))
        tasks = config_mod.load(Workspace(self.clone)).tasks_path
        if slugs.problem(slug) or not any(a == slug or a.startswith(slug + ":") for a in args) or not any(
                os.path.exists(os.path.join(tasks, *sub, slug + ".md")) for sub in ((), ("done",))):
            return {"code": 1, "out": "", "err": f"orch: host {self.opts.name} has no task {slug!r}\n"}
        mine = runs.get(self.clone, slug)
        if mine is not None and float(req.get("asked_at", mine["since"])) < mine["since"]:
            # asked for before this task was placed here (a close that waited for this host): for another task of
            # that name, closed since; not for this one
            return {"code": 1, "out": "", "err": f"orch: host {self.opts.name} has a newer task {slug!r} than the "
                                                 f"one this {args[0]} was for\n"}
        timeout = float(req.get("timeout", 600)) + 30
        try:
            done = self.orch(*args, timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"code": 124, "out": "", "err": f"orch: {args[0]} on host {self.opts.name} took too long\n"}
        return {"code": done.returncode, "out": done.stdout.decode("utf-8", "replace"),
                "err": done.stderr.decode("utf-8", "replace")}

    # -- the process ------------------------------------------------------------------------------------------------

    async def serve(self, ready: Callable[[str], None]) -> None:
        self.loop = asyncio.get_running_loop()
        self.client = await connect(self.opts.link)
        registry = wf.registry_id(self.opts.link.cluster)
        try:
            await self.beat(registry)
        except Exception as exc:
            why = refused(exc)
            if why is not None:
                raise ClusterError(f"the cluster refused host {self.opts.name}: {why}") from None
            raise
        pollers = workers(self.client, self.opts.link,
                          [(wf.host_queue(self.opts.link.cluster, self.opts.name), self.activities())])
        stop = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            self.loop.add_signal_handler(signum, stop.set)
        running = [asyncio.create_task(w.run()) for w in pollers]
        ready(f"orch host {self.opts.name} serving {self.clone} on {self.opts.link.address} "
              f"(queue {wf.host_queue(self.opts.link.cluster, self.opts.name)}, {self.opts.max_workers} places"
              + (f", labels {', '.join(self.opts.labels)}" if self.opts.labels else "") + ")")
        swept = 0.0
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), self.opts.beat)
            except TimeoutError:
                try:
                    await self.beat(registry)
                except Exception as exc:  # noqa: BLE001 - the next beat tries again
                    ready(f"heartbeat failed: {exc}")
                if self.loop.time() - swept >= SWEEP:
                    swept = self.loop.time()
                    await self.sweep(ready)
            if any(t.done() for t in running):
                for t in running:
                    if t.done() and t.exception() is not None:
                        raise ClusterError(f"host {self.opts.name} stopped polling: {t.exception()}")
        self.stopping.set()
        await asyncio.gather(*(w.shutdown() for w in pollers), return_exceptions=True)

    async def beat(self, registry: str) -> None:
        assert self.client is not None
        info = await asyncio.to_thread(self.info)
        await self.client.start_workflow("orch.hosts", {}, id=registry,
                                         task_queue=wf.shared_queue(self.opts.link.cluster),
                                         start_signal="beat", start_signal_args=[info])


def serve(opts: Options, say: Callable[[str], None]) -> int:
    host = Host(opts)
    host.prepare()
    host.start_daemon()
    try:
        asyncio.run(host.serve(say))
    finally:
        host.stop_daemon()
    say(f"orch host {opts.name} stopped; its workers keep running until the cluster places their tasks elsewhere")
    return 0
