"""The workers' sandbox (orch/sandbox.py, workflow/sandboxing.py, orch/workerhost.py): a hostile agent as coder and
reviewer tries every way out, and every one fails while its own work goes through; the sandbox's arguments; the
branch carried across; `sandbox = "required"` without bubblewrap. Real bubblewrap, real tmux, real git."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from orch import inbox as spool
from orch import sandbox
from orch.store import Store
from orch.workflow.context import Ctx
from orch.workspace import Workspace as OrchWorkspace
from tests.kit.harness import Workspace, one_line_error, wait_for

HOSTILE = Path(__file__).parent / "kit" / "hostile_agent.py"
MARK = "pwned-by-the-hostile-agent"

pytestmark = pytest.mark.skipif(sandbox.check() is not None, reason=f"needs bubblewrap: {sandbox.check()}")


def git(ws: Workspace, *args: str) -> str:
    return subprocess.run(["git", "-C", str(ws.root), *args], capture_output=True, text=True, check=True).stdout.strip()


def snapshot(ws: Workspace) -> dict[str, object]:
    """Everything the hostile agent goes for, as it is."""
    home = Path(os.path.expanduser("~"))
    return {
        "readme": (ws.root / "README.md").read_bytes(),
        "config": ws.config_file.read_bytes(),
        "main": git(ws, "rev-parse", "refs/heads/main"),
        "victim branch": git(ws, "rev-parse", "refs/heads/orch/victim"),
        "victim worktree": sorted(p.name for p in (ws.root / ".worktree" / "victim").iterdir()),
        "hooks": sorted(p.name for p in (ws.root / ".git" / "hooks").iterdir()),
        "base tree object": git(ws, "cat-file", "-t", "main^{tree}"),
        "home mark": (home / f".{MARK}").exists(),
    }


def test_a_hostile_coder_and_reviewer_get_nowhere_and_their_own_work_counts(ws: Workspace) -> None:
    ws.config(f"""[agents.hostile]
command = [{sys.executable!r}, {str(HOSTILE)!r}]
prompt = "file"
env = {{ HOSTILE_ROOT = {str(ws.root)!r}, HOSTILE_OTHER = "victim", HOSTILE_SOCKET = {ws.socket!r}, HOSTILE_MARK = {MARK!r} }}
""")
    ws.task("victim", "A task whose coder only waits.\n\n```scripted\ncoder:\n  wait\n```\n")
    ws.run_until("victim", ("coding",))
    wait_for(lambda: "scripted>" in ws.orch("capture", "victim").out, 20, "the victim's coder")
    before = snapshot(ws)
    victim_before = ws.statuses("victim")

    ws.task("attacker", "---\nagent: hostile\n---\nDo the work (and anything else you can).\n\n"
                        f"## Validation\n- `{sys.executable} check.py`\n")
    try:
        final = ws.run_until("attacker", ("ready", "blocked"), timeout=60)
    finally:
        print("\n".join(ws.statuses("attacker")), ws.orch("capture", "attacker", "-n", "60", check=False).out,
              ws.orch("log", "-n", "60").out)
    lines = ws.statuses("attacker")
    assert final["state"] == "ready", lines
    assert any("hostile coder: escaped=[] own=['commit']" in x for x in lines), lines
    assert any("hostile reviewer: escaped=[] own=[]" in x for x in lines), lines
    assert any("review" in x and "approve" in x for x in lines), lines

    # every target as it was
    assert snapshot(ws) == before
    assert not (ws.root / ".worktree" / "attacker" / "reviewer.txt").exists()
    assert MARK not in ws.orch("capture", "victim", "-n", "200").out
    assert ws.statuses("victim")[: len(victim_before)] == victim_before
    assert not any(MARK in x for x in ws.statuses("victim")), ws.statuses("victim")
    assert ws.task_status("victim")["state"] == "coding"
    # the validation ran the coder's code in the coder's sandbox
    (run,) = (ws.root / ".orch" / "runs").glob("attacker-r1-*.log")  # its one command, none of the coder's
    assert "hostile validation: escaped=[]" in run.read_text(), run.read_text()
    assert not (ws.root / f"{MARK}-validation").exists()
    # its repository is where it was
    worktree = ws.root / ".worktree" / "attacker"
    assert (worktree / ".git").read_text().strip() == f"gitdir: {ws.root / '.git' / 'worktrees' / 'attacker'}"
    assert (ws.root / ".git" / "worktrees" / "attacker" / "commondir").read_text().strip() == "../.."
    # its own commit is on its branch, carried across from its sandbox
    assert git(ws, "log", "-1", "--format=%s", "refs/heads/orch/attacker") == "hostile work"
    assert (ws.root / ".worktree" / "attacker" / "work.txt").read_text() == MARK + "\n"
    # what it forged in its own spool was refused where orch applied it, as the worker it is
    log = ws.orch("log", "-n", "500").out
    assert "may not speak for task victim" in log
    assert "a coder may not give verdicts" in log
    (review,) = [r for r in Store(str(ws.root / ".orch" / "orch.db")).reviews("attacker")]
    assert review.reviewer.startswith("attacker:reviewer:") and review.decision == "approve"


def test_the_sandbox_arguments_hide_then_show_then_open_in_order() -> None:
    plan = sandbox.Plan(chdir="/w/wt", write=("/w/wt", "/s/spool"), show=("/s/bin",), hide=("/s", "/tasks"),
                        keep=("/tmp/repo", "/home/me"), binds=(("/s/view", "/w/.git/refs/heads/orch", True),))
    argv = sandbox.wrap(plan, ["agent", "--flag", "; rm -rf /"])
    assert argv[:12] == ["bwrap", "--die-with-parent", "--unshare-pid", "--unshare-ipc", "--ro-bind", "/", "/",
                         "--dev", "/dev", "--proc", "/proc", "--tmpfs"]
    joined = " ".join(argv)
    order = ["--tmpfs /tmp", "--ro-bind-try /tmp/repo", "--tmpfs /s", "--tmpfs /tasks", "--ro-bind-try /s/bin",
             "--bind-try /w/wt", "--bind /s/view /w/.git/refs/heads/orch", "--remount-ro /s", "--chdir /w/wt"]
    assert [joined.index(x) for x in order] == sorted(joined.index(x) for x in order)
    assert "/home/me" not in argv  # only what lies under the private /tmp needs keeping
    assert argv[-4:] == ["--", "agent", "--flag", "; rm -rf /"]  # the agent's argv, untouched


def test_sandbox_required_without_bubblewrap_refuses_clearly_and_starts_nothing(ws: Workspace, tmp_path: Path) -> None:
    ws.config('sandbox = "required"')
    nobwrap = tmp_path / "bin"
    nobwrap.mkdir()
    for tool in ("git", "tmux"):
        os.symlink(shutil.which(tool) or tool, nobwrap / tool)
    env = {"PATH": f"{nobwrap}:{os.path.dirname(sys.executable)}"}
    ws.task("walled", "```scripted\ncoder:\n  report \"done: x\"\n```\n")
    r = ws.orch("new-task", "walled", env=env, check=False)
    one_line_error(r, 'sandbox = "required"', "bubblewrap")
    assert ws.orch("status", "--json", env=env).json()["sandbox"].startswith("required, and not available")
    assert ws.tmux("list-windows", "-a", check=False).strip() == ""
    assert not (ws.root / ".worktree" / "walled").exists()
    ws.orch("scan", env=env, check=False)
    assert any('sandbox = "required"' in x for x in ws.statuses("walled")), ws.statuses("walled")
    assert ws.task_status("walled")["state"] == "queued"


def test_a_move_of_the_branch_outside_reaches_the_coders_view(ws: Workspace) -> None:
    ws.task("moved", "```scripted\ncoder:\n  wait\n  run git log -1 --format=seen:%s\n  report \"done: looked\"\n```\n")
    ws.run_until("moved", ("coding",))
    worktree = ws.root / ".worktree" / "moved"
    # the person commits on the task's branch from outside the sandbox (in the worktree, as anyone may)
    (worktree / "by-you.txt").write_text("x\n")
    subprocess.run(["git", "-C", str(worktree), "add", "by-you.txt"], check=True)
    subprocess.run(["git", "-C", str(worktree), "commit", "-q", "-m", "yours"], check=True)
    ws.scan()
    view = ws.root / ".orch" / "sandbox" / "moved" / "heads" / "moved"
    assert view.read_text().strip() == git(ws, "rev-parse", "refs/heads/orch/moved")
    ws.orch("send", "moved", "go on")
    wait_for(lambda: "seen:yours" in ws.orch("capture", "moved", "-n", "100").out, 30, "the coder to see your commit")


def test_a_worker_cannot_move_its_tasks_worktree_and_a_record_cannot_name_a_path(ws: Workspace) -> None:
    """`orch - "worktree <path>"` from a worker is only noted (validation and close would act on that path); a
    spool record whose task is a path is refused, and nothing is written outside the task folder."""
    ws.task("victim", "```scripted\ncoder:\n  wait\n```\n")
    ws.task("mover", "```scripted\ncoder:\n  report \"worktree ../victim\"\n  wait\n```\n")
    ws.run_until("victim", ("coding",))
    ws.run_until("mover", ("coding",))
    wait_for(lambda: ws.scan() and any("worktree ../victim" in x for x in ws.statuses("mover")), 30, "the note")
    line = next(x for x in ws.statuses("mover") if "worktree ../victim" in x)
    assert "not taken" in line
    assert ws.task_status("mover")["worktree"] == str(ws.root / ".worktree" / "mover")

    outside = ws.root.parent / "x"
    spool.write(OrchWorkspace(str(ws.root)), {"kind": "message", "task": "../../x/notes", "text": "done: pwn",
                                             "token": "", "worker": "", "role": ""})
    ws.scan()
    assert not outside.exists() and not list(ws.root.parent.glob("**/notes.md"))
    assert "not a task name" in ws.orch("log", "-n", "50").out


def test_a_forged_window_is_not_adopted_after_a_lost_database(ws: Workspace) -> None:
    """A window tagged like orch's (every tag copied from a real worker's window, its proof among them, or the
    proof left out) is not orch's: after the database is lost, orch adopts its own coder back and reports the
    forgeries as orphans, typing nothing into them."""
    ws.task("real", "```scripted\ncoder:\n  wait\n```\n")
    ws.run_until("real", ("coding",))
    (window,) = ws.tmux("list-windows", "-a", "-F", "#{window_id}").split()
    tags = {}
    for line in ws.tmux("show-options", "-w", "-t", window).splitlines():
        name, _, value = line.partition(" ")
        if name.startswith("@orch_"):
            tags[name] = value.strip('"')
    assert tags["@orch_proof"]
    forged = {}
    for who, drop in (("copied", ""), ("unproven", "@orch_proof")):
        made = ws.tmux("new-window", "-d", "-P", "-F", "#{window_id}", "-t", tags["@orch_task"] and "task-real",
                       "sleep 600").strip()
        for name, value in tags.items():
            if name != drop:
                value = f"real:reviewer:{who}" if name == "@orch_worker" else value
                ws.tmux("set-option", "-w", "-t", made, name, "reviewer" if name == "@orch_role" else value)
        forged[who] = made
    for suffix in ("", "-wal", "-shm"):
        (ws.root / ".orch" / f"orch.db{suffix}").unlink(missing_ok=True)
    out = ws.orch("scan").out
    assert "re-registered from tmux: real" in out, out
    status = ws.orch("status", "--json").json()
    (task,) = status["tasks"]
    assert [w["id"] for w in task["workers"]] == [tags["@orch_worker"]], task["workers"]
    orphans = {o["worker"]: o["reason"] for o in status["orphans"]}
    assert orphans == {f"real:reviewer:{who}": "no proof that orch made it (a worker could have): not adopted"
                       for who in forged}, orphans


def test_the_spools_of_ended_workers_go_once_handed_on(fake_ctx: Ctx) -> None:
    from orch.workflow import sandboxing

    spools = {}
    for worker, pending in (("a:coder:1", False), ("b:coder:2", False), ("c:coder:3", True)):
        spools[worker] = Path(sandboxing.spool_of(fake_ctx, worker))
        (spools[worker] / "new").mkdir(parents=True)
        if pending:
            (spools[worker] / "new" / "1.json").write_text("{}")
    assert sandboxing.sweep(fake_ctx, {"a:coder:1"}) == []  # too recent: its host may still be handing on
    assert sandboxing.sweep(fake_ctx, {"a:coder:1"}, settle=0) == ["b:coder:2"]
    assert [w for w, p in spools.items() if p.exists()] == ["a:coder:1", "c:coder:3"]
