"""orch's promises under what a person (or a crash) does to it: nothing lost, nothing stuck, nothing destructive
following from what a task file lacks. On the in-memory multiplexer with real files, git and database."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from orch.lifecycle import TaskState as S
from orch.taskfile import MARKER, parse
from orch.workflow import close, jobs, review
from tests.kit.fakes import TASK, Bench
from tests.kit.harness import wait_for


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


SLOW = """Slow to validate.

## Validation
- `sleep {seconds} && test -f flag.txt`
"""


def validating(bench: Bench, slug: str, seconds: int) -> None:
    bench.put(slug, S.VALIDATING, text=SLOW.format(seconds=seconds))
    bench.start(slug)
    bench.commit(slug)


def test_a_long_validation_freezes_nothing(bench: Bench) -> None:
    """A 40 s validation runs in a background job: the pass that starts it returns at once, and the next passes apply
    another task's messages and start new tasks while it runs."""
    validating(bench, "slow", 40)
    bench.scan()
    job = jobs.find(bench.ctx, "slow", review.VALIDATION)
    assert job is not None and jobs.state(job).status == "running"  # the pass did not wait for it
    bench.put("other", S.CODING)
    bench.start("other")
    bench.say("other", "done: quick one")  # applied at once (say() applies), while the slow job runs
    bench.put("fresh")
    report = bench.scan()
    assert report.spawned == ["fresh"] and jobs.state(job).status == "running"
    assert bench.state("slow") == "validating"
    assert "user: done: quick one" in bench.statuses("other") and bench.state("other") != "coding"  # moved on
    close.close(bench.ctx, "slow", force=True)  # ends its job too
    assert jobs.find(bench.ctx, "slow", review.VALIDATION) is None


def test_a_validation_job_lost_with_its_process_is_started_again_then_given_up(bench: Bench) -> None:
    validating(bench, "v", 30)
    bench.scan()
    for attempt in range(1, jobs.MAX_ATTEMPTS + 1):
        job = jobs.find(bench.ctx, "v", review.VALIDATION)
        assert job is not None and job.spec["attempt"] == attempt
        pid = wait_for(lambda j=job: Path(j.stem + ".pid").exists() and int(Path(j.stem + ".pid").read_text()), 10,
                       "the job's runner to start")
        os.killpg(int(pid), signal.SIGKILL)  # the machine went down under it, say
        wait_for(lambda j=job: not jobs.running(j), 10, "the runner to be gone")
        bench.scan()
    assert bench.state("v") == "fixing"
    assert any(f"stopped {jobs.MAX_ATTEMPTS} times" in s for s in bench.statuses("v"))


def test_a_first_prompt_left_untyped_by_a_killed_pass_is_typed_by_the_next(bench: Bench) -> None:
    """kill -9 between starting a coder (or a reviewer) and typing its prompt: the next pass types it."""
    from orch.workflow import spawn

    bench.put("t", S.CODING)
    task = bench.task("t")
    pending = spawn.start_worker(bench.ctx, task, "coder", bench.ctx.panes())  # ... and the process dies here
    assert pending is not None
    coder = bench.worker("t")
    assert coder.state == "starting" and bench.mux.agent(coder.pane_id).received == []
    bench.scan()
    received = bench.mux.agent(coder.pane_id).received
    assert len(received) == 1 and received[0].startswith("# orch: coder prompt for task t, round 1")
    assert bench.worker("t").state == "working"
    bench.scan()
    assert len(bench.mux.agent(coder.pane_id).received) == 1  # typed once


def test_a_reviewer_idle_without_a_verdict_is_reminded_once_then_the_review_ends(bench: Bench) -> None:
    bench.configure("idle_reminder_after = 0")
    reviewer = bench.at_review("t")
    for _ in range(2):  # its turn ends: two readings of its idle prompt
        bench.screen(reviewer, "> ")
        bench.scan()
    received = bench.mux.agent(reviewer.pane_id).received
    assert "your review ended without a verdict" in received[-1] and bench.state("t") == "reviewing"
    for screen in ("working: on it", "working: on it", "> ", "> "):  # it works, then goes idle, still no verdict
        bench.screen(reviewer, screen)
        bench.scan()
    assert bench.state("t") == "blocked"
    assert "the reviewer gave no verdict" in (bench.task("t").field("blocked") or "")
    assert [r.status for r in bench.ctx.store.reviews("t")] == ["failed"]


def test_a_save_through_a_file_opened_before_orch_replaced_it_is_not_lost(bench: Bench) -> None:
    path = bench.put("t")
    fd = os.open(path, os.O_RDWR)  # an editor that keeps the file open, and writes in place when it saves
    try:
        bench.scan()  # orch writes its block: a new file takes the name, the editor's is the old one
        assert "state: coding" in path.read_text()
        mine = "Write the flag file, and tell me when.\n"
        os.ftruncate(fd, 0)
        os.pwrite(fd, mine.encode(), 0)
    finally:
        os.close(fd)
    report = bench.scan()
    assert "t" in report.restored
    text = path.read_text()
    assert text.startswith(mine) and "state: coding" in text and "coder started" in text
    # two saves, one to each copy: the live one stays, the other is kept and the task says where
    fd = os.open(path, os.O_RDWR)
    try:
        bench.say("t", "progress: a line so that orch writes the file again")
        path.write_text(path.read_text().replace("tell me when", "tell me soon"))  # saved the live file too
        os.ftruncate(fd, 0)
        os.pwrite(fd, b"an older buffer\n", 0)
    finally:
        os.close(fd)
    bench.scan()
    assert "tell me soon" in path.read_text()
    (kept,) = [s for s in bench.statuses("t") if "you saved two copies" in s]
    assert Path(kept.rsplit(" ", 1)[1]).read_text() == "an older buffer\n"


def test_a_late_save_older_than_the_person_s_newer_text_does_not_undo_it(bench: Bench) -> None:
    """An editor saves into the copy orch replaced (a late save), then the person edits the live file, then orch
    writes the file again before a pass takes up the late save (a daemon killed in between): the late save is
    older than the text now live. It is kept aside and the task says where; the newer text stays."""
    path = bench.put("t")
    fd = os.open(path, os.O_RDWR)  # an editor with the file open
    try:
        bench.scan()  # orch replaces the file: the editor's copy is the old one
        os.ftruncate(fd, 0)
        os.pwrite(fd, b"an older buffer\n", 0)  # the editor saves: into the old copy
    finally:
        os.close(fd)
    live = path.read_text()
    path.write_text(live.replace("Write the flag file.", "Write the flag file, then say so."))  # newer, in place
    bench.say("t", "progress: orch writes the file again (the person's newer text carried over)")
    bench.scan()  # now the late save is found: it was made over text that is not live any more
    person = parse(path.read_text()).person
    assert "Write the flag file, then say so." in person and "an older buffer" not in person
    (kept,) = [s for s in bench.statuses("t") if "you saved two copies" in s]
    assert Path(kept.rsplit(" ", 1)[1]).read_text() == "an older buffer\n"


def test_a_late_save_and_a_later_live_edit_to_other_lines_are_merged(bench: Bench) -> None:
    """The same race, with the late save and the newer live text changing different lines of what they were both
    made over: both changes are kept in the live file (a three-way merge), nothing is set aside."""
    path = bench.put("t")
    fd = os.open(path, os.O_RDWR)
    try:
        bench.scan()
        person, sep, block = path.read_text().partition(MARKER)
        late = person.rstrip("\n") + "\n\nA line saved into the old copy.\n\n"
        os.ftruncate(fd, 0)
        os.pwrite(fd, (late + sep + block).encode(), 0)  # the editor's save lands in the replaced copy
    finally:
        os.close(fd)
    live = path.read_text()
    path.write_text(live.replace("Write the flag file.", "Write the flag file, then say so."))  # another line
    bench.say("t", "progress: orch writes the file again")
    bench.scan()
    person = parse(path.read_text()).person
    assert "Write the flag file, then say so." in person and person.count("A line saved into the old copy.") == 1
    assert not [s for s in bench.statuses("t") if "you saved two copies" in s]


def test_a_task_in_review_goes_on_after_the_database_is_lost(bench: Bench, monkeypatch: pytest.MonkeyPatch) -> None:
    """The review loop finds its busy tasks in the database; one it has no record of (a database rebuilt from the
    task files) is read from its file and moved on all the same."""
    from orch.workflow import review
    from orch.workflow.scan import ScanReport, advance_pipeline

    bench.put("t", "validating")
    bench.ctx.store.forget_task("t")  # as after a lost database: only the file's block says where it is
    seen: list[str] = []
    monkeypatch.setattr(review, "advance", lambda ctx, task, panes: seen.append(task.slug) or "")
    advance_pipeline(bench.ctx, ScanReport())
    assert seen == ["t"]
