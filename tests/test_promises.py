"""orch's promises under what a person (or a crash) does to it: nothing lost, nothing stuck, nothing destructive
following from what a task file lacks. On the in-memory multiplexer with real files, git and database."""

from __future__ import annotations

import subprocess

from orch.lifecycle import TaskState as S
from orch.taskfile import MARKER
from tests.kit.fakes import TASK, Bench


def test_an_editors_stale_save_while_a_coder_runs_keeps_the_coder_and_restores_the_block(bench: Bench) -> None:
    """The person opened the task file before orch first wrote to it, orch started the coder, the person saves:
    the block is gone from the file. Nothing restarts the coder; the block comes back from orch's record, and the
    person's text is theirs."""
    path = bench.put("t")  # a new task: no block yet
    editor_copy = path.read_text() + "\nOne more requirement: keep it short.\n"
    bench.scan()
    coder = bench.worker("t")
    assert bench.state("t") == "coding" and MARKER in path.read_text()
    path.write_text(editor_copy)  # the editor's save: the person's text, orch's block dropped
    report = bench.scan()
    assert report.restored == ["t"] and report.spawned == [] and not report.lost
    assert bench.worker("t").id == coder.id and coder.pane_id in bench.mux.panes  # the same coder, still there
    text = path.read_text()
    assert text.startswith(editor_copy) and "state: coding" in text and "coder started" in text
    # an older copy of the block (a save of a copy opened long ago) is put right the same way
    bench.say("t", "progress: halfway")
    old = text
    bench.say("t", "progress: nearly there")
    path.write_text(old)
    bench.scan()
    assert path.read_text().count("user: progress: nearly there") == 1


def test_the_state_comes_from_orchs_record_not_from_a_block_someone_edited(bench: Bench) -> None:
    bench.put("t")
    bench.scan()
    path = bench.path("t")
    path.write_text(path.read_text().replace("state: coding", "state: ready"))  # a hand edit below the marker
    assert bench.state("t") == "coding"
    bench.scan()
    assert "state: coding" in path.read_text() and "state: ready" not in path.read_text()


def test_a_task_branch_deleted_under_its_coder_is_reported_once(bench: Bench) -> None:
    bench.put("t", S.CODING)
    bench.start("t")
    subprocess.run(["git", "-C", str(bench.root), "update-ref", "-d", "refs/heads/orch/t"], check=True)
    for _ in range(3):
        bench.scan()
    gone = [s for s in bench.statuses("t") if "the task branch orch/t is gone" in s]
    assert len(gone) == 1 and "orch close t" in gone[0]
    assert bench.task("t").field("problem") == gone[0]


def test_a_copied_task_file_does_not_take_the_original_tasks_state(bench: Bench) -> None:
    bench.put("a")
    bench.scan()
    assert bench.state("a") == "coding"
    bench.path("b").write_text(bench.path("a").read_text())  # the person copies a task to make a similar one
    assert bench.state("b") == "queued"  # the copied block names orch/a: it is not b's
    bench.scan()
    assert bench.state("b") == "coding" and "branch: orch/b" in bench.path("b").read_text()
    assert TASK.strip() in bench.path("b").read_text()
