"""Hostile input through every parser that takes outside text (task files, messages, spool records, verdicts, task
names, hook payloads, the lifecycle's names): over 10,000 generated inputs a run, each counted in the reliability
suite's totals. A parser may refuse, clearly; it never crashes and never loses what it was given."""

from __future__ import annotations

import functools
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orch import agents, lifecycle, taskfile, verdicts
from orch import inbox as spool
from orch import slug as slugs
from orch.blockmarks import state_in
from orch.errors import OrchError
from orch.lifecycle import Actor, TaskEvent, TaskState
from orch.taskfile import TaskDoc
from orch.workflow.intent import parse as parse_intent
from orch.workflow.messages import interpret
from tests.kit.harness import Tally

pytestmark = pytest.mark.reliability

ANY = st.characters(codec="utf-8", exclude_categories=["Cs"])
TEXT = st.text(alphabet=ANY, max_size=400)
# text with the characters that matter to these formats more often than chance would give them
NASTY = st.lists(st.one_of(ANY, st.sampled_from(list("\r\n\t:-#`[]{}\"'\\;$|&<>%@") + [
    taskfile.MARKER, "## Summary", "## Status", "---", "```", "state: ", "VERDICT:", "REPORT:", "task-"])),
    max_size=120).map("".join)
LINES = st.lists(st.text(alphabet=ANY, max_size=80).map(taskfile.one_line).filter(bool), max_size=6)


def inputs(n: int) -> settings:
    """A property run on ``n`` generated inputs."""
    return settings(max_examples=n, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


def counted(test):
    """Each input a property is given is counted in the suite's totals."""
    tally = Tally()

    @functools.wraps(test)
    def run(*args, **kwargs):
        tally.add("inputs tried")
        test(*args, **kwargs)

    return run


@inputs(2000)
@given(person=NASTY, meta=st.dictionaries(st.sampled_from(taskfile.META_KEYS), TEXT, max_size=3), summary=LINES,
       status=LINES, eol=st.sampled_from(["\n", "\r\n"]))
@counted
def test_task_files_round_trip_and_keep_the_persons_bytes(person: str, meta: dict, summary: list, status: list,
                                                           eol: str) -> None:
    doc = TaskDoc(person=person, meta={k: taskfile.one_line(v) for k, v in meta.items() if taskfile.one_line(v)},
                  summary=summary, status=status, eol=eol, has_block=True)
    text = taskfile.render(doc)
    back = taskfile.parse(text)
    assert back.person == person and back.status == status and back.meta == doc.meta
    assert state_in(text) == back.state
    try:
        taskfile.front_matter(person, "t.md")
    except OrchError as exc:
        assert "\n" not in str(exc)


@inputs(1500)
@given(text=NASTY, state=st.one_of(st.sampled_from([s.value for s in TaskState]), TEXT), worker=st.booleans())
@counted
def test_messages_mean_a_known_move_or_a_note(text: str, state: str, worker: bool) -> None:
    effect = interpret(text, state, from_worker=worker)
    if effect.move is not None:
        assert lifecycle.allowed_task(state, effect.move.to, effect.move.event, effect.move.actor)
    assert "\n" not in taskfile.one_line(effect.status)
    assert set(effect.meta) <= {"worktree"}


@inputs(1500)
@given(text=TEXT, task=TEXT, worker=TEXT, garbage=st.binary(max_size=400))
@counted
def test_spool_records_round_trip_and_garbage_is_refused(text: str, task: str, worker: str, garbage: bytes) -> None:
    record = {"uid": "1-2-ab", "at": 1700000000.5, "kind": "message", "task": task, "text": text, "worker": worker}
    assert spool.decode(spool.encode(dict(record))) == record
    for data in (garbage, b"orch-message 1\n" + garbage):
        found = spool.decode(data)
        assert found is None or (found["uid"] and 0 < found["at"] < 1e11)


@inputs(1500)
@given(text=NASTY)
@counted
def test_verdicts_parse_or_are_refused_clearly(text: str) -> None:
    try:
        findings = verdicts.parse_findings(text)
    except verdicts.FindingError as exc:
        assert str(exc) and "\n" not in str(exc)
    else:
        for f in findings:
            assert f["severity"] in verdicts.SEVERITIES
            assert verdicts.parse_finding(verdicts.format_finding(f, brackets=True)) == f
    found = verdicts.from_final_message(text)
    assert found is None or found[0] in verdicts.DECISIONS


@inputs(1200)
@given(name=NASTY, taken=st.frozensets(st.text(alphabet="abc-", max_size=6), max_size=5))
@counted
def test_task_names_are_valid_or_refused_and_derived_ones_always_valid(name: str, taken: frozenset) -> None:
    problem = slugs.problem(name)
    assert problem is None or (problem and "\n" not in problem)
    derived = slugs.derive(name, taken)
    assert slugs.is_valid(derived) and derived not in taken


@inputs(1000)
@given(text=NASTY)
@counted
def test_intent_sections_never_lose_the_text(text: str) -> None:
    intent = parse_intent(text)
    assert intent.text == text
    assert all("\n" not in c for c in intent.validation)


@inputs(1000)
@given(event=NASTY, payload=st.one_of(TEXT, st.dictionaries(TEXT, st.one_of(TEXT, st.integers(), st.none()),
                                                             max_size=4).map(json.dumps)))
@counted
def test_hook_payloads_say_a_known_state_or_nothing(event: str, payload: str) -> None:
    from orch.agents.hooks import parse_payload

    data = parse_payload(payload)
    assert isinstance(data, dict)
    for kind in agents.kinds():
        agent = agents.agent(kind)
        assert agent.hook_state(event, data) in (None, "idle", "working", "waiting")
        session = agent.hook_session(data)
        assert session is None or isinstance(session, str)
        assert isinstance(agent.final_message(data), str)


@inputs(500)
@given(frm=TEXT, to=st.sampled_from(list(TaskState)), event=st.sampled_from(list(TaskEvent)),
       actor=st.sampled_from(list(Actor)))
@counted
def test_the_lifecycle_refuses_what_it_does_not_know(frm: str, to: TaskState, event: TaskEvent, actor: Actor) -> None:
    known = frm in {s.value for s in TaskState}
    assert lifecycle.allowed_task(frm, to, event, actor) == (frm == to or (known and lifecycle.allowed_task(
        TaskState(frm), to, event, actor)))
    assert "\n" not in lifecycle.way_on(frm, "t")
