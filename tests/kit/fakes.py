"""A workspace on the in-memory multiplexer, driven in-process: real task files, real git, a real database, and
workers whose screens the test writes. For unit tests of the lifecycle, the pass, routing and delivery that run in
milliseconds instead of the seconds a real tmux server and agent take."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from orch import git, taskfile
from orch.lifecycle import TaskState
from orch.mux.fake import FakeMux
from orch.store import TaskRow, Worker
from orch.taskfile import TaskDoc
from orch.workflow import inbox, scan, spawn
from orch.workflow import tasks as T
from orch.workflow.context import Ctx
from orch.workflow.setup import init

# the fake multiplexer's agent (orch.mux.fake.FakeAgent): shows "> " when ready, "working: ..." once it takes text
FAKE_PROFILE = """
[agents.fake]
command = ["fake-agent"]
ready_pattern = "^> $"
ready_timeout = 2
enter_delay = 0
confirm_timeout = 0.2
screen_idle = "^> $"
screen_working = "^working"
screen_waiting = "^Allow\\\\?"

# the same, with hooks that do not say when a prompt is taken (as Codex's)
[agents.fakehooks]
command = ["fake-agent"]
ready_pattern = "^> $"
ready_timeout = 2
enter_delay = 0
confirm_timeout = 0.2
hooks = true
prompt_hook = false
screen_idle = "^> $"
screen_working = "^working"
screen_waiting = "^Allow\\\\?"

# an agent that shows it is ready and never takes typed text (orch.mux.fake.DeafAgent)
[agents.deaf]
command = ["deaf-agent"]
ready_pattern = "^> $"
ready_timeout = 2
enter_delay = 0
confirm_timeout = 0.05
screen_working = "^working"

# an agent whose window cannot be created (orch.mux.fake.BrokenAgent)
[agents.broken]
command = ["broken-agent"]
"""

TASK = """Write the flag file.

## Validation
- `test -f flag.txt`
"""


def make_repo(root: Path) -> Path:
    git.init_repo(str(root), [("README.md", "# demo\n"), ("src/app.py", "print('hi')\n")])
    return root


class Bench:
    """One workspace on a FakeMux: set tasks up in any state, trigger what the workflow reacts to, read the result."""

    def __init__(self, root: Path, config: str = "") -> None:
        make_repo(root)
        ws, _ = init(str(root))
        text = Path(ws.config_file).read_text()
        # the fake multiplexer runs no processes: no sandbox around them
        Path(ws.config_file).write_text(f'default_agent = "fake"\nsandbox = "off"\n{config}\n{text}{FAKE_PROFILE}')
        self.mux = FakeMux()
        self.ctx = Ctx(ws, mux=self.mux)
        self.root = root

    def close(self) -> None:
        self.ctx.close()

    def configure(self, top: str = "", tables: str = "") -> None:
        """Add top-level keys and tables to the workspace's config, and load it again."""
        from orch import config

        path = Path(self.ctx.ws.config_file)
        path.write_text(f"{top}\n{path.read_text()}\n{tables}\n")
        self.ctx.cfg = config.load(self.ctx.ws)

    # -- tasks -------------------------------------------------------------------------------------------------

    def path(self, slug: str) -> Path:
        return Path(self.ctx.cfg.tasks_path) / f"{slug}.md"

    def put(self, slug: str, state: str = "", text: str = TASK, **fields: str) -> Path:
        """A task file; with ``state``, with orch's block saying it is in that state (and ``fields``). orch's record
        of the task is dropped, so that it is made again from this block (as after a lost database)."""
        path = self.path(slug)
        self.ctx.store.forget_task(slug)
        if not state:
            path.write_text(text)
            return path
        summary = [f"state: {state}"] + [f"{k.replace('_', ' ')}: {v}" for k, v in fields.items()]
        path.write_text(taskfile.render(TaskDoc(person=text, summary=summary, has_block=True)))
        row = TaskRow(slug, state, {k.replace("_", " "): v for k, v in fields.items()}, {})
        with self.ctx.store.edit_task(slug, lambda: (row, [])):
            pass  # orch's record says the same (a done task's too, as a close cut short leaves it)
        return path

    def task(self, slug: str) -> T.Task:
        return T.read_task(str(self.path(slug)), self.ctx)

    def state(self, slug: str) -> str:
        if not self.path(slug).exists():
            done = Path(self.ctx.cfg.done_path) / f"{slug}.md"
            return taskfile.parse(done.read_text()).state if done.exists() else "(gone)"
        return self.task(slug).state

    def statuses(self, slug: str) -> list[str]:
        """The task's status log (orch's record), without time stamps."""
        return [line.text for line in self.ctx.store.task_log(slug)]

    def events(self, kind: str, slug: str | None = None) -> list[str]:
        return [e.text for e in self.ctx.store.events(slug, limit=10_000) if e.kind == kind]

    # -- workers -------------------------------------------------------------------------------------------------

    def start(self, slug: str, role: str = "coder", round_no: int = 1, agent: str = "") -> Worker:
        """Start a worker for the task as orch does (worktree, window, registry), without moving the task."""
        if agent:
            text = self.path(slug).read_text()
            self.path(slug).write_text(f"---\nagent: {agent}\n---\n{text}")
        task = self.task(slug)
        text = None if role == "coder" else f"# orch: {role} prompt for task {slug}, round {round_no}\n"
        d = spawn.start_worker(self.ctx, task, role, self.ctx.panes(), text=text, round_no=round_no)
        if d is not None:
            from orch.workflow import deliver

            deliver.deliver(self.ctx, [d])
        return self.worker(slug, role)

    def worker(self, slug: str, role: str = "coder") -> Worker:
        found = [w for w in self.ctx.store.task_workers(slug) if w.role == role]
        assert found, f"no live {role} for {slug}"
        return found[-1]

    def set_worker(self, worker: Worker, state: str, **changes: object) -> Worker:
        """Test setup: put a worker's row in a state directly (not a move orch makes)."""
        assert self.ctx.store.swap_worker(worker.id, worker.state, {"state": state, **changes})
        row = self.ctx.store.worker(worker.id)
        assert row is not None
        return row

    def screen(self, worker: Worker, text: str) -> None:
        """What the worker's pane shows now (its earlier lines cleared)."""
        pane = self.mux.pane(worker.pane_id)
        pane.screen = []
        pane.show(text)

    def worktree(self, slug: str) -> Path:
        return Path(self.ctx.cfg.worktree_path) / slug

    def commit(self, slug: str, name: str = "flag.txt", text: str = "on\n") -> str:
        wt = self.worktree(slug)
        (wt / name).write_text(text)
        subprocess.run(["git", "-C", str(wt), "add", "-A"], check=True, capture_output=True)
        subprocess.run(["git", "-C", str(wt), "-c", "user.name=t", "-c", "user.email=t@e.invalid", "commit", "-qm",
                        f"write {name}"], check=True, capture_output=True)
        return git.head(str(wt)) or ""

    def ready(self, slug: str, files: dict[str, str], validation: Sequence[str] = (), base: str = "main") -> str:
        """A ready task: its branch (from ``base``) with one commit writing ``files`` (made as a coder would, in a
        worktree of its own, removed after), approved at that commit. Returns the commit."""
        def git(cwd: Path | str, *args: str) -> str:
            return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@e.invalid", *args], cwd=cwd,
                                  capture_output=True, text=True, check=True).stdout.strip()

        root = str(self.root)
        git(root, "branch", f"orch/{slug}", base)
        wt = self.root.parent / f"{self.root.name}-wt-{slug}"
        git(root, "worktree", "add", "-q", str(wt), f"orch/{slug}")
        for name, text in files.items():
            (wt / name).parent.mkdir(parents=True, exist_ok=True)
            (wt / name).write_text(text)
        git(wt, "add", "-A")
        git(wt, "commit", "-qm", f"{slug}: its work")
        sha = git(wt, "rev-parse", "HEAD")
        git(root, "worktree", "remove", "--force", str(wt))
        checks = "".join(f"- `{c}`\n" for c in validation)
        self.put(slug, "ready", text=f"Task {slug}.\n" + (f"\n## Validation\n{checks}" if checks else ""), approved=sha)
        return sha

    # -- what orch reacts to ---------------------------------------------------------------------------------------

    def say(self, slug: str, text: str, worker: Worker | None = None, kind: str = "message") -> None:
        """A message as the inbox receives it: from ``worker`` (its token) or from the person (none)."""
        record = {"uid": f"{time.time_ns()}-{slug}", "at": time.time(), "kind": kind, "task": slug, "text": text,
                  "worker": worker.id if worker else "", "role": worker.role if worker else "",
                  "token_hash": worker.token_hash if worker else ""}
        self.ctx.store.import_messages([record])
        inbox.apply_pending(self.ctx)

    def hook(self, worker: Worker, event: str, payload: str = "{}") -> None:
        self.say(worker.task, f"{event}\n{payload}", worker, kind="hook")

    def scan(self) -> scan.ScanReport:
        return scan.scan(self.ctx)

    def at_review(self, slug: str) -> Worker:
        """A task at review: its coder committed, validation passed, a reviewer started. Returns the reviewer."""
        from orch.lifecycle import TaskState

        self.put(slug, TaskState.VALIDATING)
        self.start(slug)
        self.commit(slug)
        self.settle()  # the validation runs in the background: a pass starts it, a later one takes its result
        assert self.state(slug) == "reviewing", self.statuses(slug)
        return self.worker(slug, "reviewer")

    def jobs_done(self, timeout: float = 30) -> None:
        """Wait until every background job (a validation) has its result."""
        folder = Path(self.ctx.ws.path("jobs"))
        deadline = time.monotonic() + timeout
        while True:
            specs = [str(p)[: -len(".json")] for p in folder.glob("*/*.json") if not p.name.endswith(".result.json")]
            pending = [stem for stem in specs if not Path(stem + ".result.json").exists()]
            if not pending:
                return
            assert time.monotonic() < deadline, f"jobs still running: {pending}"
            time.sleep(0.02)

    def settle(self) -> scan.ScanReport:
        """A pass, then (while it started background jobs) their results and another pass."""
        report = self.scan()
        for _ in range(5):
            if not any(Path(self.ctx.ws.path("jobs")).glob("*/*.json")):
                break
            self.jobs_done()
            report = self.scan()
        return report


def ready_states() -> list[str]:
    return [s.value for s in TaskState]


class FakeForge:
    """The forge interface in memory (for the bench): PRs by branch, set by the test; every query counted."""

    repo = "o/n"

    def __init__(self) -> None:
        from orch.forge import Pull

        self.by_branch: dict[str, Pull] = {}
        self.queries = 0
        self.logs: dict[int, str] = {}

    def pulls(self, wants: list) -> tuple[dict, object]:
        from orch.forge import Budget

        self.queries += 1
        found = {}
        for w in wants:
            by_number = [p for p in self.by_branch.values() if w.number and p.number == w.number]
            found[w.task] = by_number[0] if by_number else self.by_branch.get(w.branch)
        return found, Budget(4999, 5000, 0.0)

    def job_log(self, check: object) -> str:
        return self.logs.get(getattr(check, "job_id", 0), "")

    def open_pull(self, branch: str, base: str, title: str, body: str, draft: bool) -> object:
        raise AssertionError("the bench's forge opens no PR")


def with_forge(bench: Bench) -> FakeForge:
    """The bench's workspace watches PRs (``[forge] repo``, asked on every pass) on an in-memory forge."""
    from orch import config

    path = Path(bench.ctx.ws.config_file)
    path.write_text(path.read_text().replace("\n[forge]\n", '\n[forge]\nrepo = "o/n"\ninterval = 0\n'))
    bench.ctx.cfg = config.load(bench.ctx.ws)
    forge = FakeForge()
    bench.ctx.__dict__["forge"] = forge
    return forge
