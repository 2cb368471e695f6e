"""Recovery: the tmux server gone, the database gone or corrupt, things deleted by hand, and `orch gc`.
Real tmux, real git, the scripted agent."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from orch.store import Store
from tests.kit.harness import Workspace, one_line_error, scripted_task, wait_for

pytestmark = [pytest.mark.tmux, pytest.mark.timeout(300)]


def config(ws: Workspace, line: str) -> None:
    cfg = ws.root / ".orch" / "config.toml"
    cfg.write_text(line + "\n" + cfg.read_text())


def received(ws: Workspace, worker_id: str) -> list[str]:
    path = ws.root / ".orch" / "logs" / f"scripted-{worker_id.replace(':', '-')}.jsonl"
    if not path.exists():
        return []
    return [json.loads(line)["text"] for line in path.read_text().splitlines()]


def coders(ws: Workspace, slug: str) -> list[dict]:
    return [w for w in ws.task_status(slug)["workers"] if w["role"] == "coder"]


def start_two(ws: Workspace) -> dict[str, dict]:
    ws.task("alpha", scripted_task("write notes.txt 'first part'", "commit 'first part'", "wait"))
    ws.task("beta", scripted_task("wait"))
    ws.scan()
    wait_for(lambda: "first part" in subprocess.run(["git", "log", "--format=%s", "-1", "orch/alpha"], cwd=ws.root,
                                                    capture_output=True, text=True).stdout, 30, "alpha's commit")
    return {slug: coders(ws, slug)[0] for slug in ("alpha", "beta")}


def test_after_kill_server_the_next_pass_brings_every_worker_back_in_its_worktree(ws: Workspace) -> None:
    before = start_two(ws)
    ws.tmux("kill-server")
    out = ws.scan().out
    assert "recovered: alpha" in out and "recovered: beta" in out, out
    for slug in ("alpha", "beta"):
        t = ws.task_status(slug)
        assert t["state"] == "coding"
        old = before[slug]
        (new,) = coders(ws, slug)  # the live one
        assert new["id"] != old["id"] and new["worktree"] == old["worktree"]
        assert Store(str(ws.root / ".orch" / "orch.db")).worker(old["id"]).state == "lost"
        # the new agent really runs in that worktree
        pane_path = ws.tmux("display-message", "-p", "-t", new["pane_id"], "#{pane_current_path}").strip()
        assert Path(pane_path).resolve() == Path(old["worktree"]).resolve()
        text = (ws.tasks / f"{slug}.md").read_text()
        assert "coder lost: the tmux server" in text and "coder recovered after it was lost" in text
    # the scripted agent cannot resume a session: it starts fresh, told what the branch already holds
    (new_alpha,) = [w for w in coders(ws, "alpha") if w["id"] != before["alpha"]["id"]]
    prompt = wait_for(lambda: received(ws, new_alpha["id"]), 30, "the new coder's prompt")
    assert "continue a lost worker's work" in prompt[0] and "first part" in prompt[0]
    # a second pass changes nothing
    assert "recovered" not in ws.scan().out


def test_without_recover_on_start_the_task_says_how_and_orch_recover_does_it(ws: Workspace) -> None:
    config(ws, "recover_on_start = false")
    start_two(ws)
    ws.tmux("kill-server")
    out = ws.scan().out
    assert "recovered" not in out and "lost: alpha" in out
    assert ws.task_status("alpha")["state"] == "lost"
    assert "`orch recover alpha` brings them back" in (ws.tasks / "alpha.md").read_text()
    out = ws.orch("recover", "alpha").out
    assert "recovered: alpha: coder" in out
    assert ws.task_status("alpha")["state"] == "coding" and ws.task_status("beta")["state"] == "lost"
    out = ws.orch("recover").out
    assert "recovered: beta: coder" in out and "alpha" not in out
    assert "nothing to recover" in ws.orch("recover").out
    ws.task("fresh", "A task not started yet.\n")
    one_line_error(ws.orch("recover", "fresh", check=False), "is queued", "orch start fresh")
    one_line_error(ws.orch("recover", "nosuch", check=False), "nosuch")


def test_a_lost_database_is_rebuilt_from_tmux_tags_task_files_and_git(ws: Workspace) -> None:
    before = start_two(ws)
    for suffix in ("", "-wal", "-shm"):
        (ws.root / ".orch" / f"orch.db{suffix}").unlink(missing_ok=True)
    out = ws.scan().out
    assert "re-registered from tmux" in out and "alpha" in out and "beta" in out
    for slug, old in before.items():
        (new,) = coders(ws, slug)
        for key in ("id", "window_id", "pane_id", "pane_pid", "worktree", "branch"):
            assert new[key] == old[key], (slug, key)
    assert "registry rebuilt from tmux tags" in ws.orch("log").out
    # and routing works again
    ws.orch("send", "beta", "still there?")
    wait_for(lambda: any("still there?" in m for m in received(ws, before["beta"]["id"])), 30, "the message")


def test_a_corrupt_database_is_set_aside_and_rebuilt(ws: Workspace) -> None:
    before = start_two(ws)
    db = ws.root / ".orch" / "orch.db"
    for suffix in ("-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    # (swapped in whole: written in place, a hook opening the file between its truncation and its new bytes would
    # find an empty file, which SQLite takes for an empty database, and start one there)
    garbage = db.with_name("garbage")
    garbage.write_bytes(b"this is not a database at all" * 100)
    garbage.replace(db)
    out = ws.scan().out
    assert "re-registered from tmux" in out
    assert [c["pane_id"] for c in coders(ws, "alpha")] == [before["alpha"]["pane_id"]]
    aside = list((ws.root / ".orch").glob("orch.db.corrupt-*"))
    assert aside and aside[0].read_bytes().startswith(b"this is not a database")
    assert "moved it to" in ws.orch("log").out


def test_things_deleted_by_hand_are_reported_and_the_worker_left_alone(ws: Workspace) -> None:
    before = start_two(ws)
    # a worktree removed by hand under a running coder
    subprocess.run(["rm", "-rf", before["alpha"]["worktree"]], check=True)
    ws.scan()
    text = (ws.tasks / "alpha.md").read_text()
    assert "worktree" in text and "is gone (deleted by hand?)" in text
    assert coders(ws, "alpha")[0]["state"] != "lost"  # left alone
    ws.scan()
    assert (ws.tasks / "alpha.md").read_text().count("is gone (deleted by hand?)") == 2  # summary + one status line
    # a task file deleted while its worker runs: reported, the window kept, no crash and no loop
    (ws.tasks / "beta.md").unlink()
    out = ws.scan().out
    assert f"orphan window {before['beta']['window_id']}" in out and "no task file" in out
    panes = ws.tmux("list-panes", "-a", "-F", "#{pane_id} #{pane_dead}")
    assert f"{before['beta']['pane_id']} 0" in panes
    assert ws.scan().code == 0


def test_gc_lists_what_is_stale_and_removes_only_what_orch_made_with_yes(ws: Workspace) -> None:
    start_two(ws)
    # stale things orch made: an orphan window, a dead pane, a worktree whose task file is gone, a closed task's
    # merged branch
    ws.task("quits", scripted_task("exit 2"))
    ws.task("finished", scripted_task("wait"))
    ws.scan()
    wait_for(lambda: ws.scan().out.count("exited: quits") or ws.task_status("quits")["state"] == "lost", 30,
             "the agent to exit")
    ws.orch("close", "finished")  # keeps its branch
    (ws.tasks / "beta.md").unlink()
    # the person's own, with names orch could have given: never removed
    subprocess.run(["git", "branch", "orch/merged-old", "main"], cwd=ws.root, check=True)
    subprocess.run(["git", "worktree", "add", "-q", str(ws.root / ".worktree" / "leftover"), "-b", "orch/leftover"],
                   cwd=ws.root, check=True)
    dirty = ws.root / ".worktree" / "dirtyleft"
    subprocess.run(["git", "worktree", "add", "-q", str(dirty), "-b", "orch/dirtyleft"], cwd=ws.root, check=True)
    (dirty / "unsaved.txt").write_text("work in progress\n")

    listing = ws.orch("gc").out
    assert "window" in listing and "beta" in listing
    assert "dead-pane" in listing and "quits" in listing
    assert f"{ws.root / '.worktree' / 'beta'}  (no task has it)" in listing
    assert "orch/finished  (fully merged into main)" in listing
    for name in ("leftover", "orch/merged-old", "dirtyleft"):
        assert any(name in line and "orch did not make it: left alone" in line for line in listing.splitlines())
    assert "`orch gc --yes` removes them" in listing
    # the dry run removed nothing
    assert (ws.root / ".worktree" / "beta").is_dir()
    assert "beta" in ws.tmux("list-windows", "-a", "-F", "#{@orch_task}")

    out = ws.orch("gc", "--yes").out
    assert "removed window" in out and "removed dead-pane" in out
    assert f"removed worktree {ws.root / '.worktree' / 'beta'}" in out and "removed branch orch/finished" in out
    assert "removed branch orch/beta" in out  # once its worktree is gone
    assert not (ws.root / ".worktree" / "beta").exists()
    assert (ws.root / ".worktree" / "leftover").is_dir() and dirty.is_dir()
    assert "beta" not in ws.tmux("list-windows", "-a", "-F", "#{@orch_task}")
    branches = subprocess.run(["git", "branch", "--format=%(refname:short)"], cwd=ws.root, capture_output=True,
                              text=True, check=True).stdout.split()
    assert "orch/finished" not in branches and "orch/beta" not in branches
    assert {"orch/merged-old", "orch/leftover", "orch/dirtyleft", "orch/alpha"} <= set(branches)
    # open tasks and their work are untouched
    assert ws.task_status("alpha")["workers"][0]["state"] != "lost"
    again = ws.orch("gc").out
    assert "0 removable" in again and "left alone" in again


def test_settings_that_would_take_the_persons_names_are_refused(ws: Workspace) -> None:
    text = ws.config_file.read_text()
    for line, needle in (('branch_prefix = ""', "branch_prefix = ''"), ('branch_prefix = "release"', "'release'"),
                         ('worktree_root = ".."', "worktree_root = '..'"), ('worktree_root = "."', "'.'"),
                         ('worktree_root = ".git/wt"', "inside .git")):
        ws.config_file.write_text(line + "\n" + text)
        for args in (("gc", "--yes"), ("status",), ("scan",)):
            one_line_error(ws.orch(*args, check=False), needle, "config.toml")
    ws.config_file.write_text('branch_prefix = "agents-"\nworktree_root = "../wt"\n' + text)
    assert ws.orch("status").code == 0  # unusual, but no overlap: accepted


def test_a_start_interrupted_before_the_task_file_recorded_it_is_done_again(ws: Workspace) -> None:
    """orch killed between creating a coder's window and recording it: its record still says queued."""
    ws.task("half", scripted_task("wait"))
    ws.scan()
    (first,) = coders(ws, "half")
    path = ws.tasks / "half.md"
    person = path.read_text().split("<!-- orch:")[0]
    store = Store(str(ws.root / ".orch" / "orch.db"))
    store.forget_task("half")  # the record and the task file as they were before the start was recorded
    store.close()
    path.write_text(person)
    out = ws.scan().out
    assert "started: half" in out
    (new,) = coders(ws, "half")
    assert new["id"] != first["id"] and ws.task_status("half")["state"] == "coding"
    windows = ws.tmux("list-windows", "-a", "-F", "#{window_id}").split()
    assert first["window_id"] not in windows or first["window_id"] == new["window_id"]
    assert "its start was interrupted" in ws.orch("log", "half").out
    assert Store(str(ws.root / ".orch" / "orch.db")).worker(first["id"]).state == "lost"
