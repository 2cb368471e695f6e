"""The fault campaign of the reliability suite: a workspace doing real work (tasks started, coded, validated and
reviewed by the scripted agent on a real tmux server, the person's messages and edits of every kind, closes) while
orch's passes are killed with SIGKILL at its fault points (orch/faults.py), and git, disk and database faults are
injected; then, faults off, the workspace is let settle and checked: no message lost, no edit of the person's lost,
no task stuck, every task file a task file.

A pass runs in a forked child of the test process (the real code, killed for real, in milliseconds instead of the
start-up of a command), with a fresh database connection; tmux, git and the files are shared as they would be.
"""

from __future__ import annotations

import os
import random
import resource
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from orch import faults
from orch import inbox as spool
from orch.lifecycle import TaskState
from orch.taskfile import MARKER, parse
from orch.workflow import close, recover, scan
from orch.workflow.context import Ctx
from orch.workspace import Workspace as OrchWorkspace
from tests.kit.harness import Tally, Workspace

RESTING = {TaskState.READY, TaskState.BLOCKED, TaskState.NEEDS_INPUT, TaskState.LOST}
# how often each fault point is armed (the ones every pass reaches more often than the rare ones)
WEIGHTS = {"inbox.imported": 3, "inbox.recorded": 3, "inbox.applied": 4, "task.recorded": 6, "file.written": 6, "spawn.registered": 2,
           "spawn.window": 2, "deliver.typed": 2, "job.started": 2, "review.recorded": 2, "verdict.bound": 2,
           "worker.lost": 1, "close.windows": 1, "close.moved": 1}


def task_text(slug: str) -> str:
    return f"""Task {slug}: the person's words.

## Validation
- `test -f {slug}.txt`

```scripted
coder:
  write {slug}.txt "{slug}\\n"
  commit "{slug}"
  report "done: {slug} written"
reviewer:
  verdict approve
```
"""


@dataclass
class Campaign:
    ws: Workspace
    tally: Tally
    rng: random.Random
    max_open: int = 4
    sent: dict[str, tuple[str, str]] = field(default_factory=dict)  # uid -> (task, text)
    edits: list[tuple[str, str]] = field(default_factory=list)  # (task, line) the person added
    opened: list[str] = field(default_factory=list)
    closed: set[str] = field(default_factory=set)
    # the second half of two-step saves, done after the next pass
    pending_two_step: list[tuple[str, Callable[[], None]]] = field(default_factory=list)
    snapshots: dict[str, str] = field(default_factory=dict)  # an old copy of each file, for stale saves
    kinds: dict[str, str] = field(default_factory=dict)  # each edit's kind of save, to say which one lost it
    held: list[tuple[str, str]] = field(default_factory=list)  # saves through a file held open, not back yet
    faults: int = 0
    passes: int = 0
    n: int = 0

    @property
    def root(self) -> Path:
        return self.ws.root

    def path(self, slug: str) -> Path:
        return self.ws.tasks / f"{slug}.md"

    def open_tasks(self) -> list[str]:
        return [s for s in self.opened if s not in self.closed and self.path(s).exists()]

    # -- a pass, killed or not ---------------------------------------------------------------------------------

    def run(self, op: Callable[[Ctx], object], point: str | None = None, n: int = 1,
            disk: int | None = None) -> bool:
        """``op`` in a forked child; armed to be killed at ``point``; with ``disk``, writes beyond that many bytes per
        file fail (a full disk). Returns True when the child was killed at its fault point."""
        pid = os.fork()
        if pid == 0:  # the child: orch's code, nothing of the test's but what it inherited
            code = 0
            try:
                if disk is not None:
                    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write that fails, not a dead process
                    resource.setrlimit(resource.RLIMIT_FSIZE, (disk, disk))
                if point:
                    faults.arm(point, n)
                ctx = Ctx(OrchWorkspace(str(self.root)))
                op(ctx)
            except BaseException:  # noqa: BLE001 - an error of the pass under a fault is allowed; a hang is not
                code = 1
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        return os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL

    def faulted_pass(self) -> None:
        points = list(WEIGHTS)
        if self.rng.random() < 0.5:  # whichever point the pass reaches n-th: most passes are cut somewhere
            point, n = "*", self.rng.randint(1, 12)
        else:  # a given point, the rarer ones too
            point, n = self.rng.choices(points, weights=[WEIGHTS[p] for p in points])[0], self.rng.randint(1, 2)
        op: Callable[[Ctx], object] = scan.scan
        if (point.startswith("close.") or (point == "*" and self.rng.random() < 0.02)) and (
                ready := self.ready_tasks()):
            slug = self.rng.choice(ready)
            self.closed.add(slug)
            op = lambda ctx, slug=slug: close.close(ctx, slug, force=True)  # noqa: E731
        t = time.monotonic()
        self.passes += 1
        killed = self.run(op, point, n)
        self.trace.append((point, killed, round(time.monotonic() - t, 2)))
        if killed:
            self.count()

    def count(self) -> None:
        self.faults += 1
        self.tally.add("faults injected")

    def ready_tasks(self) -> list[str]:
        return [s for s in self.open_tasks() if self.state(s) == TaskState.READY]

    def state(self, slug: str) -> str:
        db = sqlite3.connect(f"file:{self.root / '.orch' / 'orch.db'}?mode=ro", uri=True, timeout=30)
        try:
            row = db.execute("SELECT state FROM tasks WHERE slug = ?", (slug,)).fetchone()
        finally:
            db.close()
        return row[0] if row else TaskState.QUEUED.value

    # -- the other faults ------------------------------------------------------------------------------------

    def git_lock_pass(self) -> None:
        """A git lock file left behind (an editor's git, a crashed git): passes may fail, never break anything."""
        lock = self.root / ".git" / "index.lock"
        lock.write_text("")
        try:
            self.run(scan.scan)
        finally:
            lock.unlink()
        self.count()

    def full_disk_pass(self) -> None:
        sizes = [p.stat().st_size for p in self.ws.tasks.glob("*.md")] or [1000]
        self.run(scan.scan, disk=min(sizes) + self.rng.randint(0, 200))
        self.count()

    def locked_db_pass(self) -> None:
        """Another process holds the database's write lock for a moment: the pass waits, then goes on. (Another
        process, not a thread of this one: a forked pass would inherit this process's view of the lock.)"""
        holder = subprocess.Popen(
            [sys.executable, "-c", "import sqlite3, sys, time\n"
             "db = sqlite3.connect(sys.argv[1], timeout=30, isolation_level=None)\n"
             "db.execute('BEGIN IMMEDIATE'); print('held', flush=True); time.sleep(0.3); db.execute('COMMIT')",
             str(self.root / ".orch" / "orch.db")], stdout=subprocess.PIPE)
        assert holder.stdout is not None and holder.stdout.readline() == b"held\n"
        try:
            self.run(scan.scan)
        finally:
            holder.wait(30)
        self.count()

    # -- what the person does --------------------------------------------------------------------------------

    def new_task(self) -> None:
        slug = f"t{len(self.opened)}"
        self.path(slug).write_text(task_text(slug))
        self.opened.append(slug)

    def message(self) -> None:
        tasks = self.open_tasks()
        if not tasks:
            return
        slug = self.rng.choice(tasks)
        self.n += 1
        text = f"progress: campaign note {self.n}"
        uid = spool.write(OrchWorkspace(str(self.root)), {"kind": "message", "task": slug, "text": text, "token": "",
                                                         "worker": "", "role": ""})
        self.sent[uid] = (slug, text)

    def edit(self) -> None:
        tasks = self.open_tasks()
        if not tasks:
            return
        slug = self.rng.choice(tasks)
        path = self.path(slug)
        try:
            current = path.read_text()
        except (OSError, UnicodeDecodeError):
            return  # mid two-step save of its own
        person, sep, block = current.partition(MARKER)
        if not sep or any(s == slug for s, _ in self.pending_two_step):
            return
        if any(line not in person for s, line in self.held if s == slug):
            return  # the person's save to the file orch had replaced is not back yet: their next edit would be of
            # a buffer without it (two editors, two different texts), which is theirs to lose, not orch's
        self.held = [(s, line) for s, line in self.held if s != slug]
        self.n += 1
        line = f"Edit {self.n} by the person."
        mine = person.rstrip("\n") + f"\n{line}\n\n"
        old = self.snapshots.get(slug, current).partition(MARKER)
        kind = self.rng.choice(("in place", "rename", "stale block", "no block", "truncate first", "held open",
                                "broken first"))
        self.edits.append((slug, line))
        self.kinds[line] = kind
        if kind == "in place":
            with open(path, "r+", encoding="utf-8") as fh:
                fh.truncate(0)
                fh.write(mine + sep + block)
        elif kind == "rename":
            self._rename(path, mine + sep + block)
        elif kind == "stale block":  # the editor's buffer: the person's latest text with an old copy of the block
            self._rename(path, mine + old[1] + old[2] if old[1] else mine)
        elif kind == "no block":
            self._rename(path, mine)
        elif kind == "truncate first":  # a save in two steps, a pass between them
            with open(path, "r+", encoding="utf-8") as fh:
                fh.truncate(0)
            self._later(slug, lambda: path.write_text(mine + sep + block))
        elif kind == "held open":  # an editor that opened the file before orch's next write, saves after it
            fd = os.open(path, os.O_RDWR)
            self.held.append((slug, line))

            def late() -> None:
                try:
                    if os.environ.get("ORCH_CAMPAIGN_TRACE"):
                        st = os.fstat(fd)
                        live = os.stat(path).st_ino if path.exists() else None
                        print(f"held open {slug} {line!r}: ino {st.st_ino} nlink {st.st_nlink} live {live}")
                    os.ftruncate(fd, 0)
                    os.pwrite(fd, (mine + sep + block).encode(), 0)
                finally:
                    os.close(fd)

            self._later(slug, late)
        else:  # a save that breaks the file for a moment (not UTF-8), then the good one
            path.write_bytes(b"\xff\xfe half a save " + mine.encode())
            self._later(slug, lambda: self._rename(path, mine + sep + block))
        self.snapshots[slug] = current

    def _later(self, slug: str, step: Callable[[], None]) -> None:
        self.pending_two_step.append((slug, step))

    def finish_saves(self) -> None:
        while self.pending_two_step:
            _, step = self.pending_two_step.pop(0)
            step()

    @staticmethod
    def _rename(path: Path, text: str) -> None:
        tmp = path.with_name(f".{path.name}.swp")
        tmp.write_text(text)
        os.replace(tmp, path)

    # -- the campaign --------------------------------------------------------------------------------------------

    def step(self) -> None:
        started = time.monotonic()
        self._step()
        took = time.monotonic() - started
        if os.environ.get("ORCH_CAMPAIGN_TRACE") and took > 1:
            print(f"slow step: {took:.1f}s {self.trace}")

    trace: list = field(default_factory=list)

    def _step(self) -> None:
        self.trace = []
        roll = self.rng.random()
        if len(self.open_tasks()) < self.max_open and roll < 0.08:
            self.new_task()
        for _ in range(self.rng.randint(0, 3)):
            self.message()
        if self.rng.random() < 0.3:
            self.edit()
        special = self.rng.random()
        t = time.monotonic()
        if special < 0.03:
            self.git_lock_pass()
        elif special < 0.06:
            self.full_disk_pass()
        elif special < 0.08:
            self.locked_db_pass()
        self.trace.append(("special", round(special, 2), round(time.monotonic() - t, 2)))
        self.faulted_pass()
        self.finish_saves()
        if self.rng.random() < 0.4:  # and now and then a pass that goes through, so that the work moves on
            t = time.monotonic()
            self.run(scan.scan)
            self.trace.append(("clean", round(time.monotonic() - t, 2)))

    def inject(self, faults_wanted: int, seconds: float) -> None:
        for _ in range(2):
            self.new_task()
        deadline = time.monotonic() + seconds
        while self.faults < faults_wanted and time.monotonic() < deadline:
            self.step()

    def settle(self, seconds: float = 150) -> list[str]:
        """Faults off: clean passes (and `orch recover` for lost tasks) until every task rests; returns the ones
        that do not (stuck)."""
        self.finish_saves()
        for slug in sorted(self.closed):  # a close cut short: the person runs it again
            if self.path(slug).exists():
                self.run(lambda ctx, slug=slug: close.close(ctx, slug, force=True))
        deadline = time.monotonic() + seconds
        recovered: set[str] = set()
        while True:
            self.run(scan.scan)
            restless = []
            for slug in self.open_tasks():
                state = self.state(slug)
                if state == TaskState.LOST and slug not in recovered:
                    recovered.add(slug)
                    self.run(lambda ctx, slug=slug: recover.recover(ctx, slug))
                    restless.append(slug)
                elif state not in RESTING:
                    restless.append(slug)
            if not restless or time.monotonic() > deadline:
                return restless
            time.sleep(0.3)

    # -- what must hold ------------------------------------------------------------------------------------------

    def final_text(self, slug: str) -> str:
        path = self.path(slug)
        if path.exists():
            return path.read_text()
        folder = self.ws.tasks / "done"
        done = [folder / f"{slug}.md", *sorted(folder.glob(f"{slug}-2*.md"))]  # closed again: <slug>-<time>.md
        found = [p for p in done if p.exists()]
        return found[-1].read_text() if found else ""

    def lost_messages(self) -> list[str]:
        db = sqlite3.connect(f"file:{self.root / '.orch' / 'orch.db'}?mode=ro", uri=True, timeout=30)
        try:
            status = dict(db.execute("SELECT uid, status FROM messages").fetchall())
            logged = {uid for (uid,) in db.execute("SELECT uid FROM task_log WHERE uid IS NOT NULL")}
        finally:
            db.close()
        lost = []
        for uid, (slug, text) in self.sent.items():
            if status.get(uid) == "unapplied" and slug in self.closed:
                continue  # sent to a task the person closed: not applied, on purpose
            shown = self.final_text(slug).count(f"user: {text}\n")
            if status.get(uid) != "applied" or shown != 1 or (self.path(slug).exists() and uid not in logged):
                lost.append(f"{uid} {slug} {text!r}: {status.get(uid)}, shown {shown} time(s)")
        return lost

    def lost_edits(self) -> list[str]:
        lost = []
        for slug, line in self.edits:
            person = parse(self.final_text(slug)).person
            if person.count(line) != 1 or f"Task {slug}: the person's words." not in person:
                lost.append(f"{slug}: {line!r} ({self.kinds.get(line)}, found {person.count(line)} time(s))")
        return lost
