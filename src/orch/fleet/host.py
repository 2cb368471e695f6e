"""`orch host`: a machine that runs workers for the cluster.

It keeps its own clone of the repository (cloned from the git remote the workspace names), and in it the same orch
that runs on one machine: its own daemon (`orch run`), tmux server, sandboxes, spool and inbox, its own record of
the tasks placed here. It polls two Temporal task queues: its own (the activities of its tasks: run one, route a
command to one) and the cluster's shared one (the workflows, and placement). Every few seconds it signals its
heartbeat to the registry (labels, capacity, live workers).

A task placed here is one long activity (``run_task``): the workspace's config and the task's text are written
into the clone, the task's branch is fetched from the work in progress a lost host pushed (``refs/orch/wip/<task>``),
and the clone's daemon does the rest. Meanwhile the activity heartbeats, pushes each new head of the branch to
``refs/orch/wip/<task>``, and sends the task's record (state, summary, status lines) to the workflow each time it
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
from temporalio.exceptions import ApplicationError, CancelledError

from orch import fleet, git, taskfile
from orch import slug as slugs
from orch.errors import OrchError
from orch.files import atomic_write
from orch.fleet import runs
from orch.fleet import workflows as wf
from orch.fleet.engine import ClusterError, Link, connect, refused, workers
from orch.fleet.wip import fetch_task, push_wip
from orch.record import dataclass

POLL = 0.5  # seconds between two readings of a task's record on this host
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


class Host:
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

    def orch(self, *args: str, timeout: float | None = 120, input: bytes | None = None) -> subprocess.CompletedProcess:
        argv = [sys.executable, "-m", "orch", "-C", self.clone, *args]
        if input is not None:
            return subprocess.run(argv, env=self.env(), capture_output=True, timeout=timeout, check=False, input=input)
        return subprocess.run(argv, env=self.env(), capture_output=True, timeout=timeout, check=False,
                              stdin=subprocess.DEVNULL)

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

    def run_task(self, spec: dict) -> dict:
        slug, run = str(spec["want"]["slug"]), int(spec["run"])
        if slugs.problem(slug) or not _plain_ref(str(spec.get("base", ""))):
            raise ApplicationError(f"refused: {slug!r} is not a task name, or its base not a branch name",
                                   non_retryable=True)
        remote = "origin"  # (the repository this clone was made from)
        base = str(spec.get("base", ""))
        workflow_id = str(activity.info().workflow_id)
        with self.runs_lock:  # first: a sweep never takes this run's copy for an old one
            self.active.add(slug)
            runs.note(self.clone, slug, {"workflow": workflow_id, "run": run,
                                         "since": activity.info().scheduled_time.timestamp()})
        outcome = "failed"
        try:
            report = self._run_task(spec, slug, run, remote, base, workflow_id)
            outcome = str(report.get("state", ""))
            return report
        except CancelledError:
            outcome = "closed"
            raise
        except ApplicationError as exc:
            outcome = "stopped" if exc.type == wf.HOST_STOPPING else "failed"
            raise
        finally:
            with self.runs_lock:
                self.active.discard(slug)
                mine = runs.recorded(self.clone).get(slug)
                if mine is not None and mine["run"] == run:  # how its run here ended: the sweep keeps a ready copy
                    runs.note(self.clone, slug, {**mine, "outcome": outcome})  # even once the server forgot it

    def _run_task(self, spec: dict, slug: str, run: int, remote: str, base: str, workflow_id: str) -> dict:
        activity.heartbeat(0)
        self.use_config(str(spec.get("config", "")), base, remote)
        activity.heartbeat(0)
        from orch import config as config_mod
        from orch.workspace import Workspace

        cfg = config_mod.load(Workspace(self.clone))
        branch = cfg.branch_prefix + slug
        with self.git_lock:  # (fetches into one clone, side by side, trip over each other)
            wip = fetch_task(self.clone, remote, base, slug)
        activity.heartbeat(0)
        path = os.path.join(cfg.tasks_path, slug + ".md")
        known = _read(path)
        sent = 0
        wanted = spec.get("round")
        if known is not None and known.state not in ("done", "merged") and not (
                isinstance(wanted, dict) and self.holds(branch, wip)):
            # an open copy this run does not go on with: of an older task of that name (its close never reached
            # this host), or one whose branch is not the task's pushed work (it went on elsewhere since)
            self.orch("close", slug, "--force")
            known = _read(path)
        if isinstance(wanted, dict) and known is not None and known.state not in ("done", "merged"):
            sent = len(known.status)  # (the lines of its runs before: the workspace has them)
            self.take_round(slug, wanted)
        elif known is None or known.state in ("done", "merged"):
            text = str(spec["text"])
            if wip and (spec.get("resumed") or isinstance(wanted, dict)):
                if not any(w.branch == branch for w in git.worktrees(self.clone)):
                    git.run(self.clone, "branch", "--force", "--", branch, wip)
                text += fleet.resume_note(str(spec.get("lost_on", "")), git.out(
                    self.clone, "log", "--oneline", "--no-decorate", "-n", "20",
                    f"refs/remotes/{remote}/{base}..{wip}" if base else wip))
            if isinstance(wanted, dict) and str(wanted.get("text", "")).strip():
                text += fleet.round_note(str(wanted["text"]))  # (its copy's host is gone: here from its pushed work)
            os.makedirs(cfg.tasks_path, exist_ok=True)
            atomic_write(path, text.encode())
        pushed, last, seq = wip or "", None, 0
        try:
            while True:
                if self.stopping.is_set():  # this host is stopping: the task goes to another (its workers stay here)
                    raise ApplicationError(f"host {self.opts.name} is stopping", type=wf.HOST_STOPPING,
                                           non_retryable=True)
                if activity.is_cancelled():  # (the SDK raises it into this thread too: closed below either way)
                    raise CancelledError()
                self.keep_daemon()
                doc = _read(path) or _read(os.path.join(cfg.done_path, slug + ".md"))
                if doc is None:  # (being written, or unreadable a moment: the next look)
                    activity.heartbeat(seq)
                    activity.wait_for_cancelled_sync(POLL)
                    continue
                head = git.branch_tip(self.clone, branch) or ""
                if head and head != pushed:
                    try:
                        with self.git_lock:
                            push_wip(self.clone, remote, slug, head, pushed)
                        pushed = head
                    except OrchError as exc:  # tried again on the next look; a ready task waits for it
                        activity.logger.warning("cannot push %s's work in progress: %s", slug, exc)
                activity.heartbeat(seq)
                now = {"state": doc.state, "summary": doc.summary, "lines": len(doc.status), "head": pushed}
                final = doc.state in fleet.FINAL and (doc.state != "ready" or (head and pushed == head))
                if now != last or final:
                    seq += 1
                    # the status lines it has not sent yet (a report carries only those: its record grows with it)
                    report = {**now, "run": run, "seq": seq, "status_from": sent, "status": doc.status[sent:]}
                    if final:
                        report.update(_dossier(self.clone, slug))
                        return report
                    try:
                        self.call(_signal(workflow_id, report))
                        last, sent = now, len(doc.status)
                    except Exception as exc:  # noqa: BLE001 - said again with the next change, or on the next round
                        activity.logger.warning("cannot report %s: %s", slug, exc)
                activity.heartbeat(seq)
                activity.wait_for_cancelled_sync(POLL)
        except CancelledError:
            # the person closed the task, or this run of it is over (its heartbeat timed out while this host was cut
            # off, and the cluster placed it elsewhere): its copy here is closed, its workers ended. Not when this
            # host's own worker shuts down: its tasks go on elsewhere from what it pushed, its workers stay for them
            details = activity.cancellation_details()
            if details is not None and details.worker_shutdown:
                raise ApplicationError(f"host {self.opts.name} is stopping", type=wf.HOST_STOPPING,
                                       non_retryable=True) from None
            self.orch("close", slug, "--force")
            raise

    # -- the runs of the tasks placed here, and the copies of those that went elsewhere -----------------------------

    async def sweep(self, say: Callable[[str], None]) -> None:
        """The copies here of tasks whose run here is over, closed: placed on another host meanwhile (this host was
        stopped, or cut off, or killed and started again), or closed while it was away. A task whose run ended
        here ready keeps its copy (its coder waits for the person, as on one machine) until the person closes it."""
        from orch.fleet import engine

        assert self.client is not None
        for slug, mine in (await asyncio.to_thread(runs.recorded, self.clone)).items():
            if slug in self.active:
                continue
            try:
                state, info = await engine.task_run_state(self.client, mine["workflow"])
            except Exception:  # noqa: BLE001 - the server is away: the next sweep
                return
            if runs.fate(state, info, mine, self.opts.name) != "close":
                continue
            if await asyncio.to_thread(self.close_copy, slug):
                say(f"closed this host's copy of {slug}: its run here is over "
                    + (f"(it is on host {info.get('host')} now)" if state == "running" and info and info.get("host")
                       else "(the task was closed or placed again)"))

    def close_copy(self, slug: str) -> bool:
        """``orch close TASK --force`` in the clone, unless a run of the task began here meanwhile; True when an open
        copy was closed."""
        from orch import config as config_mod
        from orch.workspace import Workspace

        with self.runs_lock:
            if slug in self.active:
                return False
            tasks = config_mod.load(Workspace(self.clone)).tasks_path
            closed = False
            if os.path.exists(os.path.join(tasks, slug + ".md")):
                closed = self.orch("close", slug, "--force").returncode == 0
            runs.forget(self.clone, slug)
            return closed

    def holds(self, branch: str, wip: str | None) -> bool:
        """Whether this clone's branch of the task holds its pushed work (this copy is the one that pushed it)."""
        tip = git.branch_tip(self.clone, branch)
        return bool(tip) and (not wip or git.run(self.clone, "merge-base", "--is-ancestor", wip, str(tip),
                                                 check=False).returncode == 0)

    def take_round(self, slug: str, wanted: dict) -> None:
        """A round the workspace sends for this host's copy of a task (ready or blocked here): its fix request for
        the coder (the workspace's orch command in it made this clone's), or none (validated and reviewed again)."""
        from orch import launcher

        text = str(wanted.get("text", ""))
        theirs, ours = str(wanted.get("orch", "")), os.path.join(launcher.ensure(os.path.join(self.clone, ".orch")),
                                                                  "orch")
        if theirs:
            text = text.replace(theirs, ours)
        code, err = self.orch_beating("_round", slug, "--round", str(int(wanted.get("round", 0) or 0)),
                                      input=text.encode("utf-8", "surrogateescape"))
        if code != 0:
            raise ApplicationError(f"the round could not start on host {self.opts.name}: {err}", non_retryable=True)

    def orch_beating(self, *args: str, input: bytes | None = None, timeout: float = 600.0) -> tuple[int, str]:
        """`orch ARGS` in the clone from a run's thread, heartbeating while it runs (it may wait for the clone's scan
        lock, or for a new coder to start: longer than the run's heartbeat timeout). Its exit code, and its last
        line on stderr."""
        import time

        proc = subprocess.Popen([sys.executable, "-m", "orch", "-C", self.clone, *args], env=self.env(),
                                stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline, data = time.monotonic() + timeout, input
        while True:
            try:
                _, err = proc.communicate(data, timeout=2)
                break
            except subprocess.TimeoutExpired:
                data = None  # (sent already)
                activity.heartbeat()
                if time.monotonic() > deadline:
                    proc.kill()
                    proc.communicate()
                    return 124, f"orch {args[0]} took more than {timeout:.0f} s"
        lines = err.decode("utf-8", "replace").strip().splitlines()
        return proc.returncode, (lines[-1] if lines else f"exit {proc.returncode}")

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
        mine = runs.recorded(self.clone).get(slug)
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


def _signal(workflow_id: str, report: dict) -> Callable[[Client], Any]:
    return lambda client: client.get_workflow_handle(workflow_id).signal("progress", report)


def _read(path: str) -> taskfile.TaskDoc | None:
    try:
        return taskfile.read(path)[1]
    except (OSError, ValueError):
        return None


def _dossier(clone: str, slug: str) -> dict[str, str]:
    out = {}
    for key, ext in (("dossier_md", ".md"), ("dossier_json", ".json")):
        try:
            with open(os.path.join(clone, ".orch", "dossiers", slug + ext), encoding="utf-8") as fh:
                out[key] = fh.read()
        except OSError:
            pass
    return out


def _plain_ref(name: str) -> bool:
    return not name or (all(c.isalnum() or c in "._/-" for c in name) and not name.startswith(("-", "/"))
                        and ".." not in name)
