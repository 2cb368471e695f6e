"""Work that can take long runs outside the reconcile pass: a job is started by one pass and collected by a later
one (orch/jobrunner.py runs it). No pass waits on a job, and a job outlives the daemon and its restarts.

A job is ``.orch/jobs/<task>/<name>.json``; it is running while its runner holds the lock on that file, done when
``<name>.result.json`` exists, and lost when neither (its machine went down, or it was killed): the pass then starts
it again, a few times at most. A job that runs past its deadline is killed (its whole process group) and counted as
failed.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import sys
import time

from orch.files import atomic_write
from orch.record import dataclass
from orch.workflow.context import Ctx

MAX_ATTEMPTS = 3


@dataclass(frozen=True)
class Job:
    path: str  # the job file
    spec: dict

    @property
    def stem(self) -> str:
        return self.path[: -len(".json")]

    @property
    def name(self) -> str:
        return os.path.basename(self.stem)


def folder(ctx: Ctx, slug: str) -> str:
    return ctx.ws.path("jobs", slug)


def find(ctx: Ctx, slug: str, name: str) -> Job | None:
    path = os.path.join(folder(ctx, slug), name + ".json")
    try:
        with open(path, encoding="utf-8") as fh:
            return Job(path, json.load(fh))
    except (OSError, ValueError):
        return None


def start(ctx: Ctx, slug: str, name: str, spec: dict, deadline: float) -> Job:
    """Write the job file and start its runner. ``deadline``: seconds it may take."""
    os.makedirs(folder(ctx, slug), mode=0o700, exist_ok=True)
    path = os.path.join(folder(ctx, slug), name + ".json")
    previous = find(ctx, slug, name)
    attempt = (previous.spec.get("attempt", 0) if previous else 0) + 1
    spec = {**spec, "task": slug, "name": name, "attempt": attempt, "created": time.time(), "deadline": deadline,
            "workspace": ctx.ws.root}
    for suffix in (".result.json", ".pid"):
        try:
            os.unlink(path[: -len(".json")] + suffix)
        except FileNotFoundError:
            pass
    atomic_write(path, (json.dumps(spec) + "\n").encode(), mode=0o600)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCH_WORKER_TOKEN")}
    from orch import proc

    pid = proc.detached([sys.executable, "-m", "orch.jobrunner", path], env, path[: -len(".json")] + ".log")
    ctx.event("job", f"{name} started (pid {pid}, attempt {attempt})", task=slug)
    return Job(path, spec)


def result(job: Job) -> dict | None:
    try:
        with open(job.stem + ".result.json", encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


def running(job: Job) -> bool:
    """Is its runner alive (it holds the lock on the job file)? A runner that has not taken it yet counts as
    running for a few seconds after the start."""
    try:
        fd = os.open(job.path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return time.time() - job.spec.get("created", 0) < 10 and not os.path.exists(job.stem + ".pid")


@dataclass(frozen=True)
class State:
    status: str  # running | done | lost | overdue
    result: dict | None = None


def state(job: Job) -> State:
    found = result(job)
    if found is not None:
        return State("done", found)
    if running(job):
        if time.time() - job.spec.get("created", 0) > job.spec.get("deadline", 3600):
            return State("overdue")
        return State("running")
    return State("lost")


def kill(job: Job) -> None:
    """End a job's runner and everything it started (its own process group)."""
    try:
        with open(job.stem + ".pid", encoding="ascii") as fh:
            pid = int(fh.read().split()[0])
    except (OSError, ValueError, IndexError):
        return
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def cancel(ctx: Ctx, slug: str) -> None:
    """Every job of a task ends (the task is closed): runners killed, files removed."""
    base = folder(ctx, slug)
    try:
        names = os.listdir(base)
    except FileNotFoundError:
        return
    for name in names:
        if name.endswith(".json") and not name.endswith(".result.json"):
            job = find(ctx, slug, name[: -len(".json")])
            if job is not None and running(job):
                kill(job)
    import shutil

    shutil.rmtree(base, ignore_errors=True)


def forget(job: Job) -> None:
    for suffix in (".json", ".result.json", ".pid", ".pid.tmp", ".log"):
        try:
            os.unlink(job.stem + suffix)
        except FileNotFoundError:
            pass
