"""Workspace identity: an id per workspace that survives a move and not a copy; windows of other workspaces are
never this workspace's; windows from before workspaces had ids are claimed only when the registry knows them.
On the in-memory multiplexer."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from orch.errors import OrchError
from orch.mux.fake import FakeMux
from orch.store import Worker
from orch.workflow import close, route
from orch.workflow.context import Ctx
from orch.workspace import Workspace, identity
from tests.kit.fakes import Bench


def test_an_id_survives_a_move_and_another_path_but_not_a_copy(fake_ctx: Ctx, tmp_path: Path) -> None:
    first = fake_ctx.ws.id
    assert len(first) == 12 and Workspace(fake_ctx.ws.root).id == first  # stable
    link = tmp_path / "link"
    link.symlink_to(fake_ctx.ws.root)
    for _ in range(2):  # reached by either path, again and again: always the same workspace
        assert identity(Workspace(str(link))) == first and identity(Workspace(fake_ctx.ws.root)) == first
    copy = tmp_path / "copy"
    shutil.copytree(fake_ctx.ws.root, copy, symlinks=True)
    copied = identity(Workspace(str(copy)))
    assert copied != first and identity(Workspace(fake_ctx.ws.root)) == first  # the original keeps its own
    moved = tmp_path / "moved"
    shutil.move(str(copy), moved)  # a rename: the same folder in a new place
    assert identity(Workspace(str(moved))) == copied
    again = tmp_path / "again"
    shutil.copytree(moved, again, symlinks=True)  # a copy of the moved one, the original of which is gone
    assert identity(Workspace(str(again))) not in (first, copied)
    fields = dict(line.split(" ", 1) for line in (moved / ".orch" / "workspace").read_text().splitlines())
    assert fields["id"] == copied and fields["root"] == str(moved.resolve())


def window(mux: FakeMux, tags: dict[str, str], name: str = "task-x") -> tuple[str, str]:
    created = mux.new_session(name, "coder", "/tmp", {}, ["fake-agent"])
    mux.tag_window(created.window_id, tags)
    return created.window_id, created.pane_id


def test_only_own_windows_are_listed_and_old_untagged_ones_are_claimed_when_known(fake_ctx: Ctx) -> None:
    mux = fake_ctx.mux
    assert isinstance(mux, FakeMux)
    own_w, own_p = window(mux, {"workspace": fake_ctx.ws.id, "task": "x", "role": "coder", "worker": "x:coder:1"})
    other_w, _ = window(mux, {"workspace": "0123456789ab", "task": "x", "role": "coder", "worker": "x:coder:2"},
                        name="task-x@other")
    legacy_w, legacy_p = window(mux, {"task": "y", "role": "coder", "worker": "y:coder:3"}, name="task-y")
    stranger_w, _ = window(mux, {"task": "z", "role": "coder", "worker": "z:coder:4"}, name="task-z")
    fake_ctx.store.add_worker(Worker(id="y:coder:3", task="y", role="coder", agent="fake", state="working",
                                     state_since=0, created_at=0, pane_id=legacy_p, window_id=legacy_w,
                                     worktree=str(Path(fake_ctx.cfg.worktree_path) / "y")))
    listing = fake_ctx.listing()
    assert {p.window_id for p in listing.panes} == {own_w, legacy_w}
    assert {p.window_id for p in listing.all} == {own_w, other_w, legacy_w, stranger_w}
    assert mux.windows[legacy_w].tags["workspace"] == fake_ctx.ws.id  # claimed: tagged from now on
    assert "workspace" not in mux.windows[stranger_w].tags
    assert mux.windows[other_w].tags["workspace"] == "0123456789ab"
    assert [p.pane_id for p in fake_ctx.panes() if p.task == "x"] == [own_p]


def test_addresses_and_explicit_panes_never_reach_another_workspace(fake_ctx: Ctx) -> None:
    mux = fake_ctx.mux
    assert isinstance(mux, FakeMux)
    Path(fake_ctx.cfg.tasks_path, "x.md").write_text("A task.\n")
    _, other_p = window(mux, {"workspace": "0123456789ab", "task": "x", "role": "coder", "worker": "x:coder:2"})
    with pytest.raises(OrchError, match="has no coder window"):
        route.resolve(fake_ctx, "x")
    with pytest.raises(OrchError, match="belongs to another orch workspace"):
        route.resolve(fake_ctx, None, pane_override=other_p)
    _, own_p = window(mux, {"workspace": fake_ctx.ws.id, "task": "x", "role": "coder", "worker": "x:coder:1"},
                      name="task-x@mine")
    assert route.resolve(fake_ctx, "x").pane.pane_id == own_p
    assert route.resolve(fake_ctx, None, pane_override=own_p).pane.pane_id == own_p


def test_the_registry_never_reads_another_workspaces_rows(fake_ctx: Ctx) -> None:
    store = fake_ctx.store
    for n, ws_id in enumerate(("", fake_ctx.ws.id, "0123456789ab")):
        store.add_worker(Worker(id=f"t:coder:{n}", task="t", role="coder", agent="fake", state="working",
                                state_since=0, created_at=n, workspace=ws_id or "placeholder"))
    store.db.execute("UPDATE workers SET workspace = '' WHERE id = 't:coder:0'")  # a row from before ids
    assert [w.id for w in store.live_workers()] == ["t:coder:0", "t:coder:1"]
    assert store.worker("t:coder:2") is None


def test_close_kills_the_tasks_own_windows_never_a_shared_sessions_others(bench: Bench) -> None:
    """A session from before workspace ids may hold another workspace's window: close takes only its own."""
    bench.put("x", "coding")
    coder = bench.start("x")
    mux = bench.mux
    other = mux.new_window(coder.session_id, "coder", "/elsewhere", {}, ["fake-agent"])
    mux.tag_window(other.window_id, {"workspace": "0123456789ab", "task": "x", "role": "coder", "worker": "x:coder:9"})
    close.close(bench.ctx, "x", force=True)
    assert coder.pane_id not in mux.panes and other.pane_id in mux.panes


def test_old_untagged_windows_are_claimed_only_when_they_run_in_this_workspaces_worktrees(bench: Bench) -> None:
    mux = bench.mux
    inside = mux.new_session("task-a", "coder", str(bench.worktree("a")), {}, ["fake-agent"])
    mux.tag_window(inside.window_id, {"task": "a", "role": "coder", "worker": "a:coder:1"})  # its database was lost
    outside = mux.new_session("task-b", "coder", "/somewhere/else/.worktree/b", {}, ["fake-agent"])
    mux.tag_window(outside.window_id, {"task": "b", "role": "coder", "worker": "b:coder:2"})
    assert [p.pane_id for p in bench.ctx.panes()] == [inside.pane_id]
    assert mux.windows[inside.window_id].tags["workspace"] == bench.ctx.ws.id
    assert "workspace" not in mux.windows[outside.window_id].tags


def test_close_removes_only_the_worktree_and_branch_orch_made(bench: Bench) -> None:
    root = str(bench.root)
    subprocess.run(["git", "branch", "orch/mine"], cwd=root, check=True)  # the person's branch, an orch-like name
    bench.put("mine", "coding")
    bench.start("mine")  # orch makes the worktree on the existing branch
    with pytest.raises(OrchError, match="branch orch/mine was not made by orch"):
        close.close(bench.ctx, "mine", force=True, delete_branch=True)
    done = close.close(bench.ctx, "mine", force=True)
    assert done.worktree_removed and not done.branch_deleted
    subprocess.run(["git", "worktree", "add", "-q", str(bench.worktree("theirs")), "-b", "orch/theirs"], cwd=root,
                   check=True)  # a worktree the person made where orch would put the task's
    bench.put("theirs", "coding")
    bench.start("theirs")  # reused, not made
    done = close.close(bench.ctx, "theirs", force=True)
    assert done.worktree_kept and not done.worktree_removed and bench.worktree("theirs").is_dir()
    bench.put("made", "coding")
    bench.start("made")  # worktree and branch both made by orch: both go when asked
    done = close.close(bench.ctx, "made", force=True, delete_branch=True)
    assert done.worktree_removed and done.branch_deleted and not bench.worktree("made").exists()


def test_a_proof_that_is_not_even_text_of_orchs_is_refused_without_a_crash(fake_ctx: Ctx) -> None:
    mux = fake_ctx.mux
    made = mux.new_session("task-a", "coder", "/w", {}, ["fake-agent"])
    tags = {"workspace": fake_ctx.ws.id, "task": "a", "role": "coder", "worker": "a:coder:1"}
    for proof in ("é" * 32, "", "0" * 32):
        mux.tag_window(made.window_id, {**tags, "proof": proof})
        (pane,) = [p for p in mux.list_panes() if p.window_id == made.window_id]
        assert fake_ctx.proven(pane) is False
    mux.tag_window(made.window_id, {**tags, "proof": fake_ctx.proof(made.window_id, tags)})
    (pane,) = [p for p in mux.list_panes() if p.window_id == made.window_id]
    assert fake_ctx.proven(pane) is True
