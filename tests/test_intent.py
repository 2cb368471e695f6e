"""Intent packets and verdict findings: pure parsing."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orch import verdicts
from orch.workflow.intent import parse
from orch.workflow.prompts import coder_prompt

TASK = """\
Make exports fast.

## Requirements
- exports stream rows
- memory stays flat:
  under 50 MB for 1M rows
1. numbered items count too

### Acceptance criteria
- ignored? no: a sub-heading of its own kind

## Invariants
* the CSV format is unchanged

## Non-goals
- no new dependencies

## Escalate if
- the schema must change

```
## Validation
- not a heading: inside a fence
```

## Validation
- `pytest -q tests/test_export.py`
- ruff check src

```sh
$ make lint
# a comment
mypy src
```

```scripted
say this is not a validation command
```

## Notes
- not a requirement
"""


def test_sections_are_recognised() -> None:
    intent = parse(TASK)
    assert intent.requirements == [
        "exports stream rows",
        "memory stays flat: under 50 MB for 1M rows",
        "numbered items count too",
        "ignored? no: a sub-heading of its own kind",
    ]
    assert intent.invariants == ["the CSV format is unchanged"]
    assert intent.non_goals == ["no new dependencies"]
    assert intent.escalate_if == ["the schema must change"]
    assert intent.validation == ["pytest -q tests/test_export.py", "ruff check src", "make lint", "mypy src"]
    assert intent.present == {"requirements", "invariants", "non_goals", "escalate_if", "validation"}


def test_headings_are_case_insensitive_and_any_level() -> None:
    intent = parse("# REQUIREMENTS\n- a\n#### acceptance criteria:\n- b\n")
    assert intent.requirements == ["a", "b"]


def test_missing_sections_are_said_not_invented() -> None:
    intent = parse("Just do it.\n")
    assert intent.present == set() and intent.validation == []
    prompt = coder_prompt("t", intent, "/w", "orch/t", "main", [], "none")
    for name in ("Requirements", "Invariants", "Non-goals", "Escalate if"):
        assert f"(the task has no {name} section)" in prompt
    assert "No validation commands are configured" in prompt
    assert prompt.startswith("# orch: coder prompt for task t, round 1")
    for label in ("worktree: /w", "branch: orch/t", "base: main", 'orch - "done:', 'orch - "needs input:', 'orch - "blocked:'):
        assert label in prompt


def test_findings_parse() -> None:
    got = verdicts.parse_findings(
        "blocker: src/app.py:12 crashes on empty input\n\nMAJOR: [README.md] undocumented\n"
        "minor: consider a better name\nnote: tests.py looks fine\n"
    )
    assert got == [
        {"severity": "blocker", "path": "src/app.py", "line": 12, "text": "crashes on empty input"},
        {"severity": "major", "path": "README.md", "line": None, "text": "undocumented"},
        {"severity": "minor", "path": "", "line": None, "text": "consider a better name"},
        {"severity": "note", "path": "tests.py", "line": None, "text": "looks fine"},
    ]
    assert verdicts.summary("request-changes", got) == "request-changes, 1 blocker, 1 major, 1 minor, 1 note"
    assert verdicts.summary("approve", []) == "approve"


@pytest.mark.parametrize("line", ["blocker without colon", "critical: what", "note:", "blocker: [a.py:3]"])
def test_bad_findings_are_refused_with_the_line_number(line: str) -> None:
    with pytest.raises(verdicts.FindingError, match="line 2"):
        verdicts.parse_findings("note: fine\n" + line)


@pytest.mark.parametrize("word,decision", [("approve", "approve"), ("LGTM", "approve"),
                                           ("request-changes", "request-changes"), ("request_changes", "request-changes")])
def test_decisions(word: str, decision: str) -> None:
    assert verdicts.parse_decision(word) == decision


finding = st.fixed_dictionaries({
    "severity": st.sampled_from(verdicts.SEVERITIES),
    "path": st.one_of(st.just(""), st.from_regex(r"[a-z]{1,8}(/[a-z]{1,8})?\.[a-z]{1,3}", fullmatch=True)),
    "line": st.one_of(st.none(), st.integers(1, 10_000)),
    "text": st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), min_size=1).map(str.strip).filter(bool),
}).map(lambda f: {**f, "line": f["line"] if f["path"] else None})


@settings(deadline=None, database=None)
@given(st.lists(finding, max_size=8))
def test_findings_round_trip(findings: list[dict]) -> None:
    text = "\n".join(verdicts.format_finding(f, brackets=True) for f in findings)
    assert verdicts.parse_findings(text) == findings


@settings(deadline=None, database=None)
@given(st.text())
def test_parse_findings_never_crashes(text: str) -> None:
    try:
        verdicts.parse_findings(text)
    except verdicts.FindingError as exc:
        assert str(exc).startswith("line ")


@settings(deadline=None, database=None)
@given(st.text())
def test_intent_parse_never_crashes_and_keeps_text(text: str) -> None:
    assert parse(text).text == text
