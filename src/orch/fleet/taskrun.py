"""A task's run on a host (`orch host`): the long ``run_task`` activity, a round the workspace sends for a copy
here, and the sweep that closes the copies of tasks whose run here is over. Mixed into ``fleet.host.Host``.

A run writes the workspace's config and the task's text into the clone (or hands a round to the copy there), fetches
the task's work in progress when it is resumed, then follows the task's record: it heartbeats, pushes each new head
of the branch to ``refs/orch/wip/<task>`` by lease, and signals each change of the record to the task's workflow;
the task ready (or done), it returns the last report with the dossier.
"""

from __future__ import annotations

import asyncio
import os
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
from orch.fleet.wip import fetch_task, push_wip

TYPE_CHECKING = False
if TYPE_CHECKING:
    from orch.fleet.host import Options

POLL = 0.5  # seconds between two readings of a task's record on this host


class TaskRuns:
    """The runs of the tasks placed on this host (the host's state they use is the Host's)."""

    opts: Options
    clone: str
    client: Client | None
    git_lock: threading.Lock
    runs_lock: threading.Lock  # (a run starting, and a sweep closing an old copy of the same task)
    active: set[str]  # the tasks whose run is in hand in this process
    stopping: threading.Event

    def use_config(self, text: str, base: str, remote: str) -> None:
        raise NotImplementedError

    def keep_daemon(self) -> None:
        raise NotImplementedError

    def call(self, make: Callable[[Client], Any], timeout: float = 30.0) -> Any:  # noqa: ANN401
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        raise NotImplementedError

    def orch(self, *args: str, timeout: float | None = 120, input: bytes | None = None) -> subprocess.CompletedProcess:
        """`orch ARGS` in the clone, with the host's environment for it (``input`` on its stdin, else none)."""
        return subprocess.run(self._orch_argv(*args), env=self.env(), capture_output=True, timeout=timeout,
                              check=False, input=input, stdin=subprocess.DEVNULL if input is None else None)

    def _orch_argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "orch", "-C", self.clone, *args]

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
                mine = runs.get(self.clone, slug)
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
        return bool(tip) and (not wip or git.is_ancestor(self.clone, wip, str(tip)))

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

        proc = subprocess.Popen(self._orch_argv(*args), env=self.env(),
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
