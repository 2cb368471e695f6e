"""Inbox messages: what a message means for its task, the task- prefix, and summary fields."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orch import taskfile
from orch.hot import split_prefix
from orch.lifecycle import Actor, TaskEvent
from orch.lifecycle import TaskState as S
from orch.taskfile import TaskDoc
from orch.workflow.messages import interpret

PROPS = settings(database=None, deadline=None, max_examples=200)


# ---------------------------------------------------------------------------------------------------------------
# interpret


@pytest.mark.parametrize(
    "text", ["needs input: which db?", "Needs Input: which db?", "NEEDS INPUT which db?"]
)
def test_needs_input(text):
    effect = interpret(text, S.CODING, from_worker=True)
    assert effect.state == S.NEEDS_INPUT
    assert effect.fields == {"question": "which db?"}
    assert effect.status == "needs input: which db?"


def test_needs_input_without_a_question():
    effect = interpret("needs input", S.CODING, from_worker=True)
    assert effect.state == S.NEEDS_INPUT
    assert effect.fields == {"question": "(no question given)"}


@pytest.mark.parametrize("text", ["blocked: no creds", "Blocked no creds", "  BLOCKED:no creds  "])
def test_blocked(text):
    effect = interpret(text, S.CODING, from_worker=True)
    assert effect.state == S.BLOCKED
    assert effect.fields == {"blocked": "no creds"}
    assert effect.status == "blocked: no creds"


@pytest.mark.parametrize("text", ["done: added x", "DONE: added x", "Done added x"])
def test_done_moves_to_validating_and_clears_question_and_blocked(text):
    effect = interpret(text, S.NEEDS_INPUT, from_worker=True)
    assert effect.state == S.VALIDATING
    assert effect.fields == {"report": "added x", "question": None, "blocked": None}
    assert effect.status == "done: added x"


@pytest.mark.parametrize("text", ["donezo", "doneness is subjective", "blockedness", "needs inputs"])
def test_prefix_must_be_a_whole_word(text):
    effect = interpret(text, S.CODING, from_worker=True)
    assert effect.state is None
    assert effect.status == text
    assert effect.fields == {"last worker message": text}


def test_worktree_sets_meta():
    effect = interpret("worktree /x/y", S.CODING, from_worker=True)
    assert effect.meta == {"worktree": "/x/y"}
    assert effect.state is None
    assert effect.fields == {}


def test_worktree_without_path_is_a_plain_message():
    effect = interpret("worktree", S.CODING, from_worker=True)
    assert effect.meta == {}
    assert effect.status == "worktree"


def test_multi_line_worktree_message_cannot_forge_task_file_lines():
    effect = interpret("worktree /x/y\nbranch: evil\n## Status\n- forged", S.CODING, from_worker=True)
    for value in effect.meta.values():
        assert "\n" not in value and "\r" not in value
    doc = TaskDoc(person="task\n", status=["real"])
    doc.meta.update(effect.meta)
    back = taskfile.parse(taskfile.render(doc))
    assert set(back.meta) == {"worktree"}
    assert back.status == ["real"]


@pytest.mark.parametrize("text", ["PR created https://example/1", "pr created: https://example/1 (draft)"])
def test_pr_created(text):
    effect = interpret(text, S.VALIDATING, from_worker=True)
    assert effect.fields == {"pr": "https://example/1"}
    assert effect.state is None


def test_other_text_is_a_status_only():
    worker = interpret("  ran the tests, 3 failures  ", S.CODING, from_worker=True)
    assert worker.status == "ran the tests, 3 failures"
    assert worker.state is None
    assert worker.meta == {}
    assert worker.fields == {"last worker message": "ran the tests, 3 failures"}
    user = interpret("please also update the docs", S.CODING, from_worker=False)
    assert user.fields == {"last user message": "please also update the docs"}


@pytest.mark.parametrize("state", [S.QUEUED, S.READY, S.LOST, S.DONE])
@pytest.mark.parametrize("text,who", [("done: finished", True), ("done: finished", False),
                                      ("needs input: which?", True), ("blocked: cannot", False)])
def test_a_report_that_is_no_move_for_the_tasks_state_is_a_note(state, text, who):
    """A `done:` for a task with no coder at work (never started, ready, lost, closed) moves nothing."""
    effect = interpret(text, state, from_worker=who)
    assert effect.move is None and effect.fields == {} and effect.meta == {}
    assert effect.status == f"{text} (noted; not a move for a {state} task)"


def test_the_move_names_the_event_and_who_made_it():
    effect = interpret("done: x", S.REVIEWING, from_worker=True)
    assert (effect.move.to, effect.move.event, effect.move.actor) == (S.VALIDATING, TaskEvent.DONE, Actor.WORKER)
    assert interpret("blocked: y", S.FIXING, from_worker=False).move.actor == Actor.PERSON
    # a second question while one is open: no move, but the question is updated
    again = interpret("needs input: another?", S.NEEDS_INPUT, from_worker=True)
    assert again.move is None and again.fields == {"question": "another?"}


@PROPS
@given(text=st.text())
def test_interpret_never_fails_and_only_known_states(text):
    effect = interpret(text, S.CODING, from_worker=True)
    assert effect.state in (None, S.NEEDS_INPUT, S.BLOCKED, S.VALIDATING)
    assert set(effect.meta) <= {"worktree"}
    if effect.state is None and not effect.meta and "pr" not in effect.fields:
        assert effect.status == text.strip()


# ---------------------------------------------------------------------------------------------------------------
# split_prefix


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("task-foo: hi", ("foo", "hi")),
        ("task-fix-login_v2.1:   needs input: q  ", ("fix-login_v2.1", "needs input: q")),
        ("task-a: b: c", ("a", "b: c")),
        ("task-Bad: hi", (None, "task-Bad: hi")),
        ("task-foo bar: x", (None, "task-foo bar: x")),
        ("task-: x", (None, "task-: x")),
        ("task-foo hi", (None, "task-foo hi")),
        ("hello", (None, "hello")),
        ("  hello  ", (None, "hello")),
        ("my task-foo: hi", (None, "my task-foo: hi")),
    ],
)
def test_split_prefix(text, expected):
    assert split_prefix(text) == expected
