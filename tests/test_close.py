"""`orch close`: only when the user asks. Screens saved, session killed, worktree removed, task file filed."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from orch import git
from orch import inbox as spool
from orch.store import Store
from orch.workspace import Workspace as OrchWorkspace
from tests.kit.harness import Workspace, one_line_error, scripted_task, wait_for

pytestmark = pytest.mark.tmux


def _sessions(ws: Workspace) -> list[str]:
    # with no session left the server exits: list-sessions then fails, which also means "none"
    return ws.tmux("list-sessions", "-F", "#{session_name}", check=False).split()


def _worktrees(ws: Workspace) -> list[str]:
    return [os.path.realpath(w.path) for w in git.worktrees(str(ws.root))]


def _store(ws: Workspace) -> Store:
    return Store(str(ws.root / ".orch" / "orch.db"))


def _start(ws: Workspace, slug: str, *steps: str, until: str) -> None:
    """Start the task's scripted coder and wait until its status log has the coder saying ``until``."""
    ws.task(slug, scripted_task(*steps))
    assert f"started: {slug}" in ws.scan().out
    wait_for(lambda: f" coder: {until}\n" in (ws.tasks / f"{slug}.md").read_text(), timeout=30,
             what=f"{slug}'s coder to report {until!r}")


def _env_dump(path: Path) -> str:
    """A scripted step that saves the worker's ORCH_* environment to ``path`` (written whole, then renamed)."""
    return f'run sh -c "env | grep ^ORCH_ > {path}.tmp && mv {path}.tmp {path}"'


def test_close_after_committed_work(ws: Workspace) -> None:
    _start(
        ws,
        "feat",
        "say hello from the feat coder",
        "write feature.txt 'the feature\\n'",
        "commit 'Add the feature'",
        'report "committed feature.txt"',
        "wait",
        until="committed feature.txt",
    )
    t = ws.task_status("feat")
    worktree = Path(t["worktree"])
    (w,) = t["workers"]
    assert worktree.is_dir() and os.path.realpath(worktree) in _worktrees(ws)
    assert "task-feat" in _sessions(ws)
    wait_for(lambda: "hello from the feat coder" in ws.screen("feat"), what="the coder's greeting")

    r = ws.orch("close", "feat")
    assert "removed worktree" in r.out and "branch orch/feat kept" in r.out and "closed feat" in r.out
    # the session is gone
    assert "task-feat" not in _sessions(ws)
    assert w["pane_id"] not in ws.tmux("list-panes", "-a", "-F", "#{pane_id}", check=False).split()
    # the last screen was saved and holds what the agent printed
    screens = sorted((ws.root / ".orch" / "logs").glob("feat-coder-*.txt"))
    assert len(screens) == 1, screens
    saved = screens[0].read_text()
    assert "hello from the feat coder" in saved and "step 4" in saved
    assert f"saved screen {screens[0]}" in r.out
    # the worktree is removed, the branch and its commit are kept
    assert not worktree.exists()
    assert os.path.realpath(worktree) not in _worktrees(ws)
    assert git.branch_exists(str(ws.root), "orch/feat")
    assert git.out(str(ws.root), "log", "-1", "--format=%s", "orch/feat") == "Add the feature"
    assert git.out(str(ws.root), "show", "orch/feat:feature.txt") == "the feature"
    # the task file is filed in done/ with a closing status line and state done
    assert not (ws.tasks / "feat.md").exists()
    done = ws.tasks / "done" / "feat.md"
    text = done.read_text()
    assert f"closed feat: {done}" in r.out
    assert text.startswith(scripted_task("say hello from the feat coder").split("```")[0])
    status = [line for line in text.split("\n## Status\n", 1)[1].splitlines() if line.startswith("- ")]
    assert status[-1].endswith(" closed by the user; branch orch/feat kept")
    assert "\nstate: done\n" in text
    assert "last worker message: committed feature.txt" in text
    # orch forgets it: not a task any more, no orphan windows, the workers are closed in the registry
    st = ws.status()
    assert st["tasks"] == [] and st["orphans"] == []
    store = _store(ws)
    try:
        workers = store.task_workers("feat", include_ended=True)
        assert [x.state for x in workers] == ["closed"] and workers[0].ended_at is not None
        assert store.live_workers() == []
        assert any(e.kind == "close" for e in store.events("feat"))
    finally:
        store.close()
    assert "close" in ws.orch("log", "feat").out
    # a scan afterwards does not start it again
    ws.scan()
    assert _sessions(ws) == []


def test_close_with_delete_branch(ws: Workspace) -> None:
    _start(ws, "gone", "write g.txt g", "commit 'g'", 'report "committed g"', "wait", until="committed g")
    r = ws.orch("close", "gone", "--delete-branch")
    assert "branch orch/gone deleted" in r.out
    assert not git.branch_exists(str(ws.root), "orch/gone")
    assert not (ws.root / ".worktree" / "gone").exists()
    text = (ws.tasks / "done" / "gone.md").read_text()
    assert "closed by the user; branch orch/gone deleted" in text
    assert git.current_branch(str(ws.root)) == "main"


def test_close_refuses_uncommitted_changes_until_forced(ws: Workspace) -> None:
    _start(ws, "dirty", "write dirty.txt x", 'report "left a file uncommitted"', "wait", until="left a file uncommitted")
    t = ws.task_status("dirty")
    worktree = Path(t["worktree"])
    (w,) = t["workers"]
    before = (ws.tasks / "dirty.md").read_bytes()

    r = ws.orch("close", "dirty", check=False)
    one_line_error(r, "uncommitted", "--force", "dirty.txt")
    # nothing was killed, removed or moved
    assert "task-dirty" in _sessions(ws)
    assert ws.task_status("dirty")["workers"][0]["state"] in ("working", "starting", "idle")
    assert (worktree / "dirty.txt").read_text() == "x"
    assert os.path.realpath(worktree) in _worktrees(ws)
    assert (ws.tasks / "dirty.md").read_bytes() == before
    assert not (ws.tasks / "done" / "dirty.md").exists()
    assert list((ws.root / ".orch" / "logs").glob("dirty-*.txt")) == []
    # the worker still takes input
    ws.orch("send", "dirty", "still there?")
    wait_for(lambda: "received message 2" in ws.screen("dirty"), what="the worker to receive a message")

    r = ws.orch("close", "dirty", "--force")
    assert "closed dirty" in r.out
    assert "task-dirty" not in _sessions(ws)
    assert w["window_id"] not in ws.tmux("list-windows", "-a", "-F", "#{window_id}", check=False).split()
    assert not worktree.exists()
    assert (ws.tasks / "done" / "dirty.md").is_file() and not (ws.tasks / "dirty.md").exists()
    assert git.branch_exists(str(ws.root), "orch/dirty")
    assert len(list((ws.root / ".orch" / "logs").glob("dirty-coder-*.txt"))) == 1


def test_close_errors(ws: Workspace) -> None:
    one_line_error(ws.orch("close", "nosuch", check=False), "no task 'nosuch'")
    one_line_error(ws.orch("close", "@1", check=False), "must start with")
    one_line_error(ws.orch("close", check=False))
    ws.task("twice", "---\ndepends_on: [never-closes]\n---\nnever started\n")
    r = ws.orch("close", "twice")
    assert "closed twice" in r.out and "removed worktree" not in r.out
    done = ws.tasks / "done" / "twice.md"
    filed = done.read_bytes()
    r = ws.orch("close", "twice", check=False)
    one_line_error(r, "'twice' is closed")
    assert done.read_bytes() == filed
    assert sorted(p.name for p in (ws.tasks / "done").iterdir()) == ["twice.md"]


def test_messages_for_a_closed_task_are_not_applied(ws: Workspace, tmp_path: Path) -> None:
    ws.config('sandbox = "off"')  # a worker with a token (the sandbox's workers have none, see test_sandbox.py)
    env_file = tmp_path / "env.txt"
    _start(ws, "shut", _env_dump(env_file), 'report "env saved"', "wait", until="env saved")
    env = dict(line.partition("=")[::2] for line in env_file.read_text().splitlines())
    assert env["ORCH_TASK"] == "shut" and env["ORCH_WORKER_TOKEN"]
    ws.orch("close", "shut")
    done = ws.tasks / "done" / "shut.md"
    filed = done.read_bytes()

    # the (now closed) worker's token: accepted by the hot path, not applied
    worker_env = {k: env[k] for k in ("ORCH_TASK", "ORCH_ROLE", "ORCH_WORKER", "ORCH_WORKER_TOKEN")}
    r = ws.orch("-", "done: one more thing", env=worker_env)
    assert r.code == 0
    # a message already spooled for it (no token)
    spool.write(OrchWorkspace(str(ws.root)), {"kind": "message", "task": "shut", "text": "late user note", "token": ""})

    def judged() -> list | None:
        ws.scan()
        store = _store(ws)
        try:
            msgs = [m for m in store.messages("shut") if m.text in ("done: one more thing", "late user note")]
        finally:
            store.close()
        return msgs if len(msgs) == 2 and all(m.status != "pending" for m in msgs) else None

    msgs = wait_for(judged, what="both messages to be judged")
    assert [(m.status, m.note) for m in msgs] == [("unapplied", "task is closed")] * 2
    assert done.read_bytes() == filed
    assert not (ws.tasks / "shut.md").exists()
    assert "message not applied (task is closed)" in ws.orch("log", "shut").out
    # a user naming the closed task is told so in one line, and nothing is spooled
    r = ws.orch("-", "task-shut: hello?", check=False)
    one_line_error(r, "shut")
    assert os.listdir(ws.root / ".orch" / "inbox" / "new") == []
    st = ws.status()
    assert st["tasks"] == [] and st["orphans"] == []


def test_close_when_the_worktree_folder_was_deleted_by_hand(ws: Workspace) -> None:
    """A worktree removed with rm -rf holds no uncommitted work: close goes ahead, or says in one line what to do."""
    _start(ws, "vanished", "write v.txt v", "commit 'v'", 'report "committed v"', "wait", until="committed v")
    worktree = Path(ws.task_status("vanished")["worktree"])
    shutil.rmtree(worktree)
    r = ws.orch("close", "vanished", check=False)
    if r.code != 0:
        one_line_error(r, "--force")
        r = ws.orch("close", "vanished", "--force")
    assert "task-vanished" not in _sessions(ws)
    assert (ws.tasks / "done" / "vanished.md").is_file()
    assert os.path.realpath(worktree) not in _worktrees(ws)
    assert git.branch_exists(str(ws.root), "orch/vanished")
