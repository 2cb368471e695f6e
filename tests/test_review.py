"""The review loop end to end, on real tmux and git with the scripted agent in both roles."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from orch.store import Store
from tests.kit.harness import Workspace, one_line_error, reviewed_task, wait_for

pytestmark = [pytest.mark.tmux, pytest.mark.e2e]

TWO_ROUNDS = """\
Add a feature flag file.

## Requirements
- flag.txt says "on"

## Invariants
- README.md is unchanged

## Validation
- `test -f flag.txt`
- `test -s flag.txt`

```scripted
coder:
  write flag.txt "of\\n"
  commit "flag: first try"
  report "done: wrote flag.txt"
reviewer:
  verdict request-changes "blocker: flag.txt:1 says 'of', not 'on'" "minor: [README.md] mention the flag"
coder round 2:
  write flag.txt "on\\n"
  commit "flag: say on"
  report "done: flag.txt now says on"
reviewer round 2:
  verdict approve "note: flag.txt looks right"
```
"""


def run_until(ws: Workspace, slug: str, states: tuple[str, ...], timeout: float = 60) -> dict:
    def check() -> dict | None:
        ws.scan()
        t = ws.task_status(slug)
        return t if t["state"] in states else None

    return wait_for(check, timeout, f"task {slug} to reach {states}")  # type: ignore[return-value]


def git(ws: Workspace, *args: str, cwd=None) -> str:
    return subprocess.run(["git", *args], cwd=cwd or ws.root, capture_output=True, text=True, check=True).stdout


def store(ws: Workspace) -> Store:
    return Store(str(ws.root / ".orch" / "orch.db"))


def statuses(ws: Workspace, slug: str) -> list[str]:
    text = (ws.tasks / f"{slug}.md").read_text()
    if "\n## Status\n" not in text:
        return []
    return [line[23:] for line in text.split("\n## Status\n", 1)[1].splitlines() if line.startswith("- ")]


def test_two_review_rounds_to_a_dossier(ws: Workspace) -> None:
    original = TWO_ROUNDS.encode()
    ws.task("flag", TWO_ROUNDS)
    t = run_until(ws, "flag", ("ready", "blocked"))
    assert t["state"] == "ready", (ws.tasks / "flag.md").read_text()

    # the person's text is untouched, byte for byte
    data = (ws.tasks / "flag.md").read_bytes()
    assert data.startswith(original) and data[len(original) :].startswith(b"\n<!-- orch:")

    # the reviewer is a sibling window of the coder, in the task's session, in the same worktree
    workers = {w["role"]: w for w in t["workers"]}
    assert set(workers) == {"coder", "reviewer"}
    assert workers["coder"]["session_id"] == workers["reviewer"]["session_id"]
    assert workers["coder"]["window_id"] != workers["reviewer"]["window_id"]
    assert workers["reviewer"]["worktree"] == workers["coder"]["worktree"]
    assert ws.tmux("display-message", "-p", "-t", workers["reviewer"]["window_id"], "#{window_name}").strip() == "reviewer"

    # status lines in order
    lines = statuses(ws, "flag")
    order = [
        "coder started",
        "coder: done: wrote flag.txt",
        "coder finished round 1",
        "validation: 2/2 command(s) passed",
        "review round 1 of",
        "reviewer: branch review: request-changes, 1 blocker, 1 minor",
        "sent back to the coder for round 2 (review requested changes): blocker: flag.txt:1",
        "coder: done: flag.txt now says on",
        "coder finished round 2",
        "validation: 2/2 command(s) passed",
        "review round 2 of",
        "reviewer: branch review: approve, 1 note",
        "merge-ready: dossier",
    ]
    positions = []
    for needle in order:
        found = [i for i, line in enumerate(lines) if needle in line and i not in positions]
        assert found, f"no status line with {needle!r} in {lines}"
        positions.append(found[0])
    assert positions == sorted(positions), lines
    assert not any("approved" in line and "main" in line.split("approved")[0] for line in lines)

    # verdicts bound to the shas that were reviewed
    worktree = workers["coder"]["worktree"]
    head = git(ws, "rev-parse", "HEAD", cwd=worktree).strip()
    first = git(ws, "rev-parse", "HEAD~1", cwd=worktree).strip()
    reviews = store(ws).reviews("flag")
    assert [(r.round, r.sha, r.decision, r.status) for r in reviews] == [
        (1, first, "request-changes", "counted"),
        (2, head, "approve", "counted"),
    ]

    # the dossier, in both forms
    d = json.loads((ws.root / ".orch" / "dossiers" / "flag.json").read_text())
    assert d["task"] == "flag" and d["branch"] == "orch/flag" and d["base"] == "main" and d["sha"] == head
    assert d["worktree"] == worktree
    assert [c["subject"] for c in d["commits"]] == ["flag: say on", "flag: first try"]
    assert "flag.txt" in d["diffstat"]
    assert d["conflicts"]["clean"] is True and d["conflicts"]["paths"] == []
    assert [r["item"] for r in d["requirements"]] == ['flag.txt says "on"']
    assert [r["item"] for r in d["invariants"]] == ["README.md is unchanged"]
    assert d["requirements"][0]["coder_report"] == "flag.txt now says on"
    assert d["validation"]["configured"] and d["validation"]["passed"]
    assert [(v["command"], v["exit_code"]) for v in d["validation"]["runs"]] == [
        ("test -f flag.txt", 0),
        ("test -s flag.txt", 0),
    ]
    assert [(r["round"], r["sha"], r["decision"]) for r in d["reviews"]] == [
        (1, first, "request-changes"),
        (2, head, "approve"),
    ]
    assert d["blockers_fixed"] == ["blocker: flag.txt:1 says 'of', not 'on'"]
    assert d["findings_open"] == ["note: flag.txt looks right"]
    assert d["dirty"] == [] and "merge authorisation" in d["decision_needed"]
    md = ws.orch("dossier", "flag").out
    assert md.startswith("# Merge-ready dossier: flag") and head in md and "Merges cleanly" in md
    assert "`test -f flag.txt` | 0 |" in md
    # summary points at the dossier, and nothing was merged
    assert any(s.startswith("dossier: ") and s.endswith("flag.md") for s in t["summary"])
    assert git(ws, "rev-parse", "main").strip() == d["base_sha"]


def test_failing_validation_goes_back_to_the_coder_with_its_tail(ws: Workspace) -> None:
    ws.task("val", """Make the check pass.

## Validation
- `sh -c 'echo checking...; echo the answer is wrong >&2; exit 3'`

```scripted
coder:
  write a.txt "1"
  commit "a"
  report "done: a"
coder round 2:
  say got the failure
```
""")
    run_until(ws, "val", ("fixing",))
    lines = statuses(ws, "val")
    assert any("validation: 1 of 1 command(s) failed" in line for line in lines)
    assert any("sent back to the coder for round 2 (validation failed)" in line for line in lines)
    prompt = (ws.root / ".orch" / "prompts" / "val-coder-2.md").read_text()
    assert "failed with exit 3" in prompt and "the answer is wrong" in prompt and "checking..." in prompt
    wait_for(lambda: "got the failure" in ws.screen("val"), what="the coder to receive round 2")
    runs = list((ws.root / ".orch" / "runs").glob("val-r1-*-1.log"))
    assert len(runs) == 1 and "the answer is wrong" in runs[0].read_text()
    assert store(ws).reviews("val") == []  # no reviewer for a failing validation


def test_uncommitted_work_is_sent_back(ws: Workspace) -> None:
    ws.task("dirty", """Leave something uncommitted.

```scripted
coder:
  write a.txt "1"
  commit "a"
  write b.txt "not committed"
  report "done: a"
coder round 2:
  commit "b too"
  report "done: b committed"
reviewer round 2:
  verdict approve
```
""")
    t = run_until(ws, "dirty", ("ready", "blocked"))
    assert t["state"] == "ready"
    lines = statuses(ws, "dirty")
    assert any("coder finished round 1: 1 commit(s) ahead of main, 1 uncommitted change(s)" in x for x in lines)
    assert any("sent back to the coder for round 2 (work not committed): uncommitted changes" in x for x in lines)
    assert "b.txt" in (ws.root / ".orch" / "prompts" / "dirty-coder-2.md").read_text()
    # no validation configured: never reported as validated
    d = json.loads((ws.root / ".orch" / "dossiers" / "dirty.json").read_text())
    assert d["validation"] == {"configured": False, "passed": False, "runs": []}
    assert any("NOT validated" in r for r in d["residual_risks"])
    assert "not validated" in ws.orch("dossier", "dirty").out
    assert any("validation: none configured" in x and "(not validated)" in x for x in lines)
    assert not any("passed" in x for x in lines if x.startswith("validation"))


def test_a_sandboxed_reviewer_cannot_write_and_its_verdict_counts(ws: Workspace) -> None:
    ws.task("tidy", reviewed_task("A reviewer that tries to edit.", [
        'try write a.txt "reviewer was here"', 'try write .git-hook "x"',
        'try run git commit --allow-empty -q -m "by the reviewer"', "verdict approve"]))
    t = run_until(ws, "tidy", ("ready", "blocked"))
    assert t["state"] == "ready", statuses(ws, "tidy")
    worktree = ws.root / ".worktree" / "tidy"
    assert (worktree / "a.txt").read_text() == "1" and not (worktree / ".git-hook").exists()
    log = subprocess.run(["git", "-C", str(ws.root), "log", "--format=%s", "orch/tidy"], capture_output=True, text=True)
    assert log.stdout.splitlines()[0] == "a"
    (review,) = store(ws).reviews("tidy")
    assert review.status == "counted" and review.decision == "approve" and review.tree_before == review.tree_after


@pytest.mark.parametrize("what", ["tracked", "ignored", "hook"])
def test_reviewer_that_modifies_the_worktree_is_caught(ws: Workspace, what: str) -> None:
    """Without the sandbox, a reviewer's write is caught after the fact: a file of the worktree, a file git ignores
    there, or a hook of the repository (which orch's own git then never runs)."""
    ws.config('sandbox = "off"')
    proof = ws.root / "hook-ran"
    steps = {"tracked": ['write a.txt "reviewer was here"'],
             "ignored": ['write .orch/notes.txt "ignored, but written"'],
             "hook": [f'write ../../.git/hooks/post-checkout "#!/bin/sh\\ntouch {proof}\\n"',
                      "run chmod +x ../../.git/hooks/post-checkout"]}[what]
    ws.task("sneaky", reviewed_task("A reviewer that edits.", [*steps, "verdict approve"]))
    t = run_until(ws, "sneaky", ("ready", "blocked"))
    assert t["state"] == "blocked"
    (review,) = store(ws).reviews("sneaky")
    assert review.status == "invalidated" and review.decision == "approve"
    assert review.tree_before != review.tree_after
    lines = statuses(ws, "sneaky")
    assert any("not counted: the worktree (its files, ignored files, or the repository's config or hooks) changed "
               "during the review" in x for x in lines), lines
    assert any("review discarded" in x for x in lines)
    assert not (ws.root / ".orch" / "dossiers" / "sneaky.md").exists()
    if what == "hook":  # orch's next `git worktree add` does not run it
        assert os.access(ws.root / ".git" / "hooks" / "post-checkout", os.X_OK)
        ws.task("next", "```scripted\ncoder:\n  wait\n```\n")
        ws.run_until("next", ("coding",))
        assert (ws.root / ".worktree" / "next").is_dir() and not proof.exists()


def test_max_rounds_blocks_with_open_blockers_and_retry_goes_on_to_ready(ws: Workspace) -> None:
    cfg = ws.root / ".orch" / "config.toml"
    cfg.write_text("max_review_rounds = 2\n" + cfg.read_text())
    ws.task("stubborn", """Never good enough.

```scripted
coder:
  write a.txt "1"
  commit "a"
  report "done: a"
reviewer:
  verdict request-changes "blocker: a.txt is wrong"
coder round 2:
  write a.txt "2"
  commit "a2"
  report "done: a2"
reviewer round 2:
  verdict request-changes "blocker: a.txt is still wrong" "major: and slow"
coder round 3:
  write a.txt "3"
  commit "a3"
  report "done: a3"
reviewer round 3:
  verdict approve
```
""")
    t = run_until(ws, "stubborn", ("ready", "blocked"))
    assert t["state"] == "blocked"
    assert "open blockers: blocker: a.txt is still wrong" in t["summary"]
    assert any("blocked: 2 round(s) without approval" in x for x in statuses(ws, "stubborn"))
    assert [r.decision for r in store(ws).reviews("stubborn")] == ["request-changes", "request-changes"]
    # blocked is not a dead end: a verdict by hand is refused with why, new-task finds its coder, retry goes on
    one_line_error(ws.orch("verdict", "approve", "--task", "stubborn", check=False), "it is blocked", code=1)
    one_line_error(ws.orch("new-task", "stubborn", check=False), "already has a coder")
    out = ws.orch("retry", "stubborn", "--rounds", "1").out
    assert "stubborn: round 3 of at most 3, fix request typed into its coder" in out
    t = run_until(ws, "stubborn", ("ready", "blocked"))
    assert t["state"] == "ready", t
    assert (ws.root / ".orch" / "dossiers" / "stubborn.md").exists()
    assert any("retried by the person: round 3" in x for x in statuses(ws, "stubborn"))
    fix = (ws.root / ".orch" / "prompts" / "stubborn-coder-3.md").read_text()
    assert "blocker: a.txt is still wrong" in fix  # the open blockers went to the coder
    # a ready task is retried (validated and reviewed again); anything else says what moves it on
    one_line_error(ws.orch("retry", "nosuch", check=False), "nosuch")
    ws.task("fresh", "Not started.\n")
    one_line_error(ws.orch("retry", "fresh", check=False), "is queued", "orch start fresh")


def test_conflict_with_the_base_shows_in_the_dossier(ws: Workspace) -> None:
    ws.task("clash", """Change the README.

```scripted
coder:
  write README.md "# from the branch\\n"
  commit "readme from branch"
  wait
  report "done: readme"
reviewer:
  verdict approve
```
""")
    run_until(ws, "clash", ("coding",))
    wait_for(lambda: "readme from branch" in git(ws, "log", "--oneline", "orch/clash"), what="the branch commit")
    (ws.root / "README.md").write_text("# from main\n")
    git(ws, "commit", "-qam", "readme on main")
    ws.orch("send", "clash", "go on")
    t = run_until(ws, "clash", ("ready", "blocked"))
    assert t["state"] == "ready"
    d = json.loads((ws.root / ".orch" / "dossiers" / "clash.json").read_text())
    assert d["conflicts"]["clean"] is False and d["conflicts"]["paths"] == ["README.md"]
    assert any("conflicts in: README.md" in r for r in d["residual_risks"])
    assert any("main has moved on by 1 commit" in r for r in d["residual_risks"])
    assert "CONFLICTS with main" in ws.orch("dossier", "clash").out
    # nothing was merged
    assert "from main" in (ws.root / "README.md").read_text()


def test_needs_input_stops_the_loop_until_reply(ws: Workspace) -> None:
    ws.task("ask", """Ask first.

```scripted
coder:
  ask "Which name?"
  write name.txt "chosen"
  commit "name"
  report "done: named"
reviewer:
  verdict approve
```
""")
    t = run_until(ws, "ask", ("needs-input",))
    assert "question: Which name?" in t["summary"]
    for _ in range(2):  # the loop does not move on by itself
        ws.scan()
        assert ws.task_status("ask")["state"] == "needs-input"
    r = ws.orch("reply", "ask", "Call it Bob", check=False)
    assert r.code == 0, r.err
    assert run_until(ws, "ask", ("ready", "blocked"))["state"] == "ready"
    assert any("user answered: Call it Bob" in x for x in statuses(ws, "ask"))
    r = ws.orch("reply", "ask", "again", check=False)
    assert r.code == 1 and "not waiting for input" in r.err


def test_verdicts_only_from_reviewers_and_well_formed(ws: Workspace) -> None:
    ws.task("v", "A task.\n")
    r = ws.orch("verdict", "approve", "--task", "v", input="blocker without colon\n", check=False)
    assert r.code == 2 and "line 1" in r.err and "nothing was recorded" in r.err
    r = ws.orch("verdict", "maybe", "--task", "v", check=False)
    assert r.code == 2 and "approve or request-changes" in r.err
    env = {"ORCH_TASK": "v", "ORCH_ROLE": "coder", "ORCH_WORKER_TOKEN": "t0k"}
    r = ws.orch("verdict", "approve", env=env, check=False)
    assert r.code == 1 and "only a task's reviewer" in r.err
    # a verdict by hand with no review in progress: refused with why, nothing recorded
    before = (ws.tasks / "v.md").read_bytes()
    r = ws.orch("verdict", "approve", "--task", "v", check=False)
    one_line_error(r, "no review is in progress for task 'v' (it is queued)", code=1)
    assert (ws.tasks / "v.md").read_bytes() == before
    assert os.listdir(ws.root / ".orch" / "inbox" / "new") == []
    assert ws.task_status("v")["state"] == "queued"
    # a config orch cannot read: one line, no traceback
    (ws.root / ".orch" / "tasks_dir").unlink()
    ws.config_file.write_text("this is = = not toml\n")
    one_line_error(ws.orch("verdict", "approve", "--task", "v", check=False), "not valid TOML", code=1)
    one_line_error(ws.orch("-", "task-v: hello", check=False), "not valid TOML", code=1)
