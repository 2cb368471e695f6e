"""The inbox: `orch -` / `orch message` spool a message, a detached applier (or `orch scan`) applies it."""

from __future__ import annotations

import calendar
import os
import re
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orch import inbox as spool
from orch.store import Message, Store
from orch.taskfile import TaskDoc, render
from orch.workflow.context import Ctx
from orch.workflow.inbox import drain
from orch.workspace import Workspace as OrchWorkspace
from tests.kit.harness import Workspace, one_line_error, scripted_task, wait_for

pytestmark = pytest.mark.tmux

# the state a `done:` report moves a task to: the review loop starts with validation
AFTER_DONE = ("validating",)
STATUS_LINE = re.compile(r"^- (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ) (\S+): (.*)$")
# a dependency that never closes keeps `orch scan` from starting a worker for the task
PARKED = "---\ndepends_on: [never-closes]\n---\n"


def _park(ws: Workspace, slug: str, text: str = "A task that only receives messages.\n", state: str = "") -> Path:
    """A task the pass never starts; with ``state``, one whose file says it is already in that state (as if its
    coder were at work), so that reports move it."""
    if not state:
        return ws.task(slug, PARKED + text)
    doc = TaskDoc(person=PARKED + text, summary=[f"state: {state}"], has_block=True)
    return ws.task(slug, render(doc))


def _status_lines(path: Path) -> list[tuple[str, str, str]]:
    """(stamp, who, text) of every `## Status` line orch wrote in the task file."""
    text = path.read_text(encoding="utf-8")
    block = text.split("\n## Status\n", 1)
    if len(block) < 2:
        return []
    out = []
    for line in block[1].splitlines():
        m = STATUS_LINE.match(line)
        if m:
            out.append((m.group(1), m.group(2), m.group(3)))
    return out


def _said(path: Path, who: str = "user") -> list[str]:
    return [text for _, w, text in _status_lines(path) if w == who]


def _summary(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    if "\n## Summary\n" not in text:
        return []
    part = text.split("\n## Summary\n", 1)[1].split("\n## Status\n", 1)[0]
    return [line for line in part.splitlines() if line.strip()]


def _messages(ws: Workspace, task: str | None = None) -> list[Message]:
    store = Store(str(ws.root / ".orch" / "orch.db"))
    try:
        return store.messages(task, limit=100_000)
    finally:
        store.close()


def _events(ws: Workspace, kind: str) -> list:
    store = Store(str(ws.root / ".orch" / "orch.db"))
    try:
        return [e for e in store.events(limit=100_000) if e.kind == kind]
    finally:
        store.close()


def _spooled(ws: Workspace) -> list[str]:
    folder = ws.root / ".orch" / "inbox" / "new"
    return sorted(os.listdir(folder)) if folder.is_dir() else []


# ---------------------------------------------------------------------------------------------------------------
# the user's messages


def test_user_message_appends_a_status_line(ws: Workspace) -> None:
    path = _park(ws, "login")
    before = time.time()
    r = ws.orch("-", "task-login: looked at it, the form is fine")
    assert r.code == 0 and r.err == ""
    wait_for(lambda: _said(path), what="the applier to write the status line")
    ((stamp, who, text),) = _status_lines(path)
    assert who == "user" and text == "looked at it, the form is fine"
    at = calendar.timegm(time.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ"))
    assert before - 2 <= at <= time.time() + 2, stamp
    assert "last user message: looked at it, the form is fine" in _summary(path)
    assert _summary(path)[0] == "state: queued"
    # the person's text is untouched
    assert path.read_text().startswith(PARKED + "A task that only receives messages.\n")
    assert _spooled(ws) == []
    # (the line is in the file before the message is marked applied: the mark follows it)
    wait_for(lambda: [m.status for m in _messages(ws, "login")] == ["applied"], what="the message marked applied")
    (msg,) = _messages(ws, "login")
    assert msg.status == "applied" and msg.token_hash == "" and msg.text == "looked at it, the form is fine"


def test_orch_message_and_stdin(ws: Workspace) -> None:
    path = _park(ws, "api")
    ws.orch("message", "task-api:", "first", "via", "message")
    wait_for(lambda: "first via message" in _said(path), what="the `orch message` line")
    ws.orch("message", input="task-api: second from stdin\n")
    wait_for(lambda: "second from stdin" in _said(path), what="the stdin line of `orch message`")
    ws.orch("-", input="task-api: third from stdin via dash")
    wait_for(lambda: "third from stdin via dash" in _said(path), what="the stdin line of `orch -`")
    assert _said(path) == ["first via message", "second from stdin", "third from stdin via dash"]
    # ORCH_TASK names the task when the text has no prefix (a user's shell, no token)
    ws.orch("-", "fourth", "with", "env", env={"ORCH_TASK": "api"})
    wait_for(lambda: "fourth with env" in _said(path), what="the ORCH_TASK line")
    # (the line is in the file a moment before its message is marked applied in the database)
    wait_for(lambda: all(m.status == "applied" for m in _messages(ws, "api")), what="every message applied")


FORMS = [
    # (slug, message, summary lines expected, possible states, status line expected)
    ("q", "needs input: which database?", ["question: which database?"], ("needs-input",), None),
    ("b", "blocked: no credentials for the API", ["blocked: no credentials for the API"], ("blocked",), None),
    ("d", "done: added the login check", ["report: added the login check"], AFTER_DONE, None),
    ("p", "PR created https://example.invalid/pr/7 (draft)", ["pr: https://example.invalid/pr/7"], ("coding",), None),
    ("n", "Needs Input: upper case works too", ["question: upper case works too"], ("needs-input",),
     "needs input: upper case works too"),
    ("plain", "just a note", ["last user message: just a note"], ("coding",), None),
]


def test_recognised_forms_change_the_summary(ws: Workspace) -> None:
    for slug, text, _, _, _ in FORMS:
        _park(ws, slug, state="coding")
        ws.orch("-", f"task-{slug}: {text}")
    for slug, _, _, _, _ in FORMS:
        wait_for(lambda s=slug: _said(ws.tasks / f"{s}.md"), what=f"the message for {slug} to be applied")
    st = {t["slug"]: t for t in ws.status()["tasks"]}
    for slug, text, summary, states, said in FORMS:
        path = ws.tasks / f"{slug}.md"
        assert _said(path) == [said or text], slug
        lines = _summary(path)
        for line in summary:
            assert line in lines, (slug, lines)
        assert lines[0] in [f"state: {s}" for s in states], (slug, lines)
        assert st[slug]["state"] in states
        assert st[slug]["summary"] == lines
        assert st[slug]["last_status"].endswith(f" user: {said or text}")


def test_reports_for_a_task_no_coder_works_on_are_notes_and_it_starts_as_usual(ws: Workspace) -> None:
    """A `done:` for a task that never started moves nothing: it stays queued and the next pass starts its coder."""
    ws.task("later", scripted_task("wait", intro="Not started yet."))
    for text in ("done: finished already", "needs input: which one?", "blocked: waiting on design"):
        ws.orch("-", f"task-later: {text}")
    path = ws.tasks / "later.md"
    wait_for(lambda: len(_said(path)) == 3, what="the three messages to be applied")
    assert _said(path) == [f"{t} (noted; not a move for a queued task)" for t in
                           ("done: finished already", "needs input: which one?", "blocked: waiting on design")]
    assert _summary(path) == ["state: queued"]
    assert "started: later" in ws.scan().out
    assert ws.task_status("later")["state"] == "coding"


def test_needs_input_then_done_clears_the_question(ws: Workspace) -> None:
    path = _park(ws, "flow", state="coding")
    ws.orch("-", "task-flow: needs input: tabs or spaces?")
    wait_for(lambda: "question: tabs or spaces?" in _summary(path), what="the question")
    ws.orch("-", "task-flow: done: spaces it is")
    wait_for(lambda: _summary(path)[0] in [f"state: {s}" for s in AFTER_DONE], what="the state after done")
    lines = _summary(path)
    assert "report: spaces it is" in lines
    assert not any(line.startswith("question:") for line in lines), lines
    assert _said(path) == ["needs input: tabs or spaces?", "done: spaces it is"]


def test_worktree_message_sets_the_meta_line(ws: Workspace, tmp_path: Path) -> None:
    path = _park(ws, "wt")
    where = str(tmp_path / "somewhere else")
    ws.orch("-", f"task-wt: worktree {where}")
    wait_for(lambda: _said(path), what="the worktree message")
    text = path.read_text()
    head = text.split("\n## Summary\n", 1)[0]
    assert f"\nworktree: {where}\n" in head
    assert ws.task_status("wt")["worktree"] == where
    assert _said(path) == [f"worktree {where}"]


def test_errors_are_one_line(ws: Workspace) -> None:
    path = _park(ws, "known")
    before = path.read_bytes()
    r = ws.orch("-", "no prefix here", check=False)
    one_line_error(r, code=2)
    assert "task-<slug>:" in r.err
    r = ws.orch("-", "task-nosuch: hello", check=False)
    one_line_error(r, code=1)
    assert "no task 'nosuch'" in r.err
    r = ws.orch("message", "task-nosuch: hello", check=False)
    one_line_error(r, code=1)
    assert "no task 'nosuch'" in r.err
    for args, stdin in [(("-", ""), None), (("-", "task-known:"), None), (("-",), ""), (("message",), "  \n")]:
        r = ws.orch(*args, input=stdin, check=False)
        one_line_error(r, code=2)
        assert "empty" in r.err, (args, r.err)
    # nothing was spooled by any of these, and the task file is untouched
    assert _spooled(ws) == []
    assert _messages(ws) == []
    assert path.read_bytes() == before


def test_message_outside_a_workspace(tmp_path: Path, base_env: dict[str, str]) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    proc = subprocess.run(
        [sys.executable, "-m", "orch", "-", "task-x: hi"], cwd=plain, env=base_env, capture_output=True, text=True
    )
    assert proc.returncode == 1
    assert len(proc.stderr.strip().splitlines()) == 1 and "orch init" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_multiline_message_is_one_status_line(ws: Workspace) -> None:
    path = _park(ws, "multi")
    text = "task-multi: first line\nsecond line\r\n## Status\n- 2020-01-01T00:00:00Z fake entry\n\n"
    ws.orch("-", input=text)
    wait_for(lambda: _said(path), what="the multi-line message")
    assert _said(path) == ["first line second line ## Status - 2020-01-01T00:00:00Z fake entry"]
    assert len(_status_lines(path)) == 1
    assert path.read_text().count("\n## Status\n") == 1
    assert "last user message: first line second line ## Status - 2020-01-01T00:00:00Z fake entry" in _summary(path)


def test_a_message_for_a_task_file_orch_cannot_read_waits_and_is_applied_after_the_fix(ws: Workspace) -> None:
    bad = ws.tasks / "latin.md"
    bad.write_bytes(b"caf\xe9 au lait\n")
    r = ws.orch("-", "task-latin: hello")
    assert r.code == 0
    (msg,) = wait_for(lambda: [m for m in _messages(ws, "latin") if m.note], what="the message judged")
    assert msg.status == "pending" and "UTF-8" in msg.note  # it waits: nothing is lost
    assert bad.read_bytes() == b"caf\xe9 au lait\n"  # and the file orch cannot read is left alone
    r = ws.scan()
    assert "invalid task file latin.md" in r.out
    assert bad.read_bytes() == b"caf\xe9 au lait\n"
    assert [m.status for m in _messages(ws, "latin")] == ["pending"]
    assert sum("message waits" in line for line in ws.orch("log", "latin").out.splitlines()) == 1  # said once
    bad.write_text(PARKED + "café au lait\n")  # the person saves it as UTF-8
    ws.scan()
    assert [m.status for m in _messages(ws, "latin")] == ["applied"]
    assert _said(bad) == ["hello"]


def test_non_utf8_message_does_not_wedge_the_inbox(ws: Workspace) -> None:
    """Bytes that are not UTF-8 on stdin are accepted by `orch -`; they must not break every later scan."""
    path = _park(ws, "bytes")
    r = ws.orch("-", input=b"task-bytes: caf\xe9 from a latin-1 file", env={"ORCH_NO_APPLY": "1"})
    assert r.code == 0
    ws.orch("-", "task-bytes: a plain message", env={"ORCH_NO_APPLY": "1"})
    r = ws.orch("scan", check=False)
    assert "Traceback" not in r.err, r.err[-800:]
    assert r.code == 0, r.err
    assert "a plain message" in _said(path)
    assert _spooled(ws) == []
    ws.orch("-", "task-bytes: a later message")
    wait_for(lambda: "a later message" in _said(path), what="a later message to be applied")


# ---------------------------------------------------------------------------------------------------------------
# many writers at once

WRITER = """
import subprocess, sys
slug, name, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
for i in range(count):
    subprocess.run([sys.executable, "-m", "orch", "-", f"task-{slug}: {name}-m{i:02d}"], check=True)
"""


def _fresh_tasks_dir_cache(ws: Workspace) -> None:
    """Make the hot path's tasks_dir cache current (see test_hot_path_skips_the_config_after_an_edit)."""
    (ws.root / ".orch" / "tasks_dir").unlink(missing_ok=True)
    ws.orch("status")


def _storm(ws: Workspace, slugs: list[str], writers: int, per_writer: int, extra_env: dict[str, str]) -> dict:
    _fresh_tasks_dir_cache(ws)
    env = {**ws.env, **extra_env}
    procs = []
    expected: dict[str, list[str]] = {s: [] for s in slugs}
    for n in range(writers):
        slug = slugs[n % len(slugs)]
        name = f"w{n:02d}"
        expected[slug] += [f"{name}-m{i:02d}" for i in range(per_writer)]
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", WRITER, slug, name, str(per_writer)],
                cwd=ws.root,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
        )
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()
    return expected


def _check_all_applied_once(ws: Workspace, expected: dict[str, list[str]]) -> None:
    for slug, texts in expected.items():
        said = _said(ws.tasks / f"{slug}.md")
        missing = sorted(set(texts) - set(said))
        assert not missing, f"{len(missing)} message(s) lost for {slug}, e.g. {missing[:5]}"
        dupes = sorted({t for t in said if said.count(t) > 1})
        assert not dupes, f"duplicated status lines for {slug}: {dupes[:5]}"
        assert sorted(said) == sorted(texts)
    msgs = _messages(ws)
    assert len(msgs) == sum(len(t) for t in expected.values())
    assert len({m.uid for m in msgs}) == len(msgs)
    assert {m.status for m in msgs} == {"applied"}, {m.status for m in msgs}
    for slug, texts in expected.items():
        assert sorted(m.text for m in msgs if m.task == slug) == sorted(texts)


def _scan_until_spool_empty(ws: Workspace) -> None:
    def empty() -> bool:
        ws.scan()
        return _spooled(ws) == []

    wait_for(empty, timeout=60, what="the spool to empty")


def test_concurrent_writers_lose_and_duplicate_nothing(ws: Workspace) -> None:
    _park(ws, "one")
    _park(ws, "two")
    expected = _storm(ws, ["one", "two"], writers=16, per_writer=20, extra_env={})
    _scan_until_spool_empty(ws)
    # detached appliers may still be finishing; every message must end up applied exactly once
    wait_for(lambda: all(m.status == "applied" for m in _messages(ws)) and len(_messages(ws)) == 320,
             timeout=30, what="all 320 messages applied")
    _check_all_applied_once(ws, expected)
    # a further scan changes nothing
    before = {s: (ws.tasks / f"{s}.md").read_bytes() for s in expected}
    ws.scan()
    assert {s: (ws.tasks / f"{s}.md").read_bytes() for s in expected} == before


def test_concurrent_writers_with_no_apply_wait_for_scan(ws: Workspace) -> None:
    path = _park(ws, "solo")
    original = path.read_bytes()
    expected = _storm(ws, ["solo"], writers=8, per_writer=16, extra_env={"ORCH_NO_APPLY": "1"})
    # nothing was applied: all 128 messages wait in the spool
    assert len(_spooled(ws)) == 128
    assert path.read_bytes() == original
    assert _messages(ws) == []
    assert ws.task_status("solo")["pending_messages"] == 0  # not imported yet
    out = ws.scan().out
    assert "applied 128 message(s)" in out
    assert _spooled(ws) == []
    _check_all_applied_once(ws, expected)
    # the status lines keep the order the messages were sent in, per writer
    said = _said(path)
    for n in range(8):
        mine = [t for t in said if t.startswith(f"w{n:02d}-")]
        assert mine == sorted(mine)


# ---------------------------------------------------------------------------------------------------------------
# who may speak for which task


def _worker_env(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        key, _, value = line.partition("=")
        out[key] = value
    return out


def test_worker_tokens_with_a_real_worker(ws: Workspace, tmp_path: Path) -> None:
    ws.config('sandbox = "off"')  # an unsandboxed worker's token (sandboxed workers have none: test_sandbox.py)
    env_file = tmp_path / "worker-env.txt"
    other = _park(ws, "other")
    ws.task(
        "tok",
        scripted_task(
            f'run sh -c "env | grep ^ORCH_ > {env_file}.tmp && mv {env_file}.tmp {env_file}"',
            'report "task-other: hi from tok"',
            'report "progress from tok"',
            "wait",
        ),
    )
    assert "started: tok" in ws.scan().out
    tok = ws.tasks / "tok.md"
    wait_for(lambda: "progress from tok" in _said(tok, "coder"), timeout=30, what="the worker's own report")
    env = _worker_env(env_file)
    assert env["ORCH_TASK"] == "tok" and env["ORCH_ROLE"] == "coder" and len(env["ORCH_WORKER_TOKEN"]) >= 20
    # the token is in the worker's own environment only: not in tmux's, not on a command line, its file gone
    for session in ("-g", *ws.tmux("list-sessions", "-F", "#{session_id}").split()):
        shown = ws.tmux("show-environment", *(["-g"] if session == "-g" else ["-t", session]))
        assert env["ORCH_WORKER_TOKEN"] not in shown
    assert env["ORCH_WORKER_TOKEN"] not in ws.tmux("list-panes", "-a", "-F", "#{pane_start_command}")
    assert list((ws.root / ".orch" / "tokens").iterdir()) == []
    # the worker was told it may not speak for another task
    wait_for(lambda: "refused" in ws.screen("tok"), what="the refusal on the worker's screen")
    ws.scan()
    assert "hi from tok" not in other.read_text()
    refused = [m for m in _messages(ws, "other") if m.text == "hi from tok"]
    assert [m.status for m in refused] == ["refused"]
    assert any(e.task == "other" and "may not speak for task other" in e.text for e in _events(ws, "refused"))
    log = ws.orch("log").out
    assert re.search(r" refused +other .*worker of task tok may not speak for task other", log), log

    token = env["ORCH_WORKER_TOKEN"]
    # with the worker's token, a message for its own task is the coder speaking
    ws.orch("-", "note sent with the coder's token", env={"ORCH_TASK": "tok", "ORCH_WORKER_TOKEN": token})
    wait_for(lambda: "note sent with the coder's token" in _said(tok, "coder"), what="the coder's note")
    # the token of tok with ORCH_TASK lying about the task: the hot path cannot tell, the applier refuses
    before = other.read_bytes()
    ws.orch("-", "sneaky", env={"ORCH_TASK": "other", "ORCH_WORKER_TOKEN": token})
    sneaky = wait_for(
        lambda: [m for m in _messages(ws, "other") if m.text == "sneaky" and m.status != "pending"],
        what="the sneaky message to be judged",
    )
    assert [m.status for m in sneaky] == ["refused"]
    assert "may not speak for task other" in sneaky[0].note
    assert other.read_bytes() == before
    assert "sneaky" not in tok.read_text()

    # the token ends with its worker (here: a minute ago; what it wrote just before its end is still taken)
    store = Store(str(ws.root / ".orch" / "orch.db"))
    (coder,) = [w for w in store.task_workers("tok") if w.role == "coder"]
    assert store.update_worker(coder.id, ended_at=time.time() - 60)
    store.close()
    before = tok.read_bytes()
    ws.orch("-", "after its end", env={"ORCH_TASK": "tok", "ORCH_WORKER_TOKEN": token})
    late = wait_for(lambda: [m for m in _messages(ws, "tok") if m.text == "after its end" and m.status != "pending"],
                    what="the message after the end to be judged")
    assert [(m.status, m.worker) for m in late] == [("refused", "")]
    assert f"the token of {coder.id}, which has ended, is no longer valid" in late[0].note
    assert "after its end" not in tok.read_text() and tok.read_bytes() == before


def test_token_for_another_task_is_refused_at_once(ws: Workspace) -> None:
    a, b = _park(ws, "a"), _park(ws, "b")
    ws.scan()  # records that both wait for their dependency; nothing else will change them
    before = (a.read_bytes(), b.read_bytes())
    env = {"ORCH_TASK": "a", "ORCH_WORKER_TOKEN": secrets.token_urlsafe(24)}
    r = ws.orch("-", "task-b: x", env=env, check=False)
    one_line_error(r, code=1)
    assert "refused" in r.err and "'a'" in r.err and "'b'" in r.err
    ws.scan()
    assert (a.read_bytes(), b.read_bytes()) == before
    (msg,) = _messages(ws)
    assert msg.task == "b" and msg.status == "refused"
    assert any(e.task == "b" for e in _events(ws, "refused"))
    # a user (no token) may name any task, whatever $ORCH_TASK says
    ws.orch("-", "task-b: from a user whose shell says task a", env={"ORCH_TASK": "a"})
    wait_for(lambda: "from a user whose shell says task a" in _said(b), what="the user's line in b")
    assert a.read_bytes() == before[0]


def test_unknown_token_is_not_applied(ws: Workspace) -> None:
    a = _park(ws, "a")
    ws.scan()  # records that the task waits for its dependency; nothing else will change it
    before = a.read_bytes()
    r = ws.orch("-", "hi", env={"ORCH_TASK": "a", "ORCH_WORKER_TOKEN": "bogus"})
    assert r.code == 0
    (msg,) = wait_for(
        lambda: [m for m in _messages(ws, "a") if m.status != "pending"], what="the message to be judged"
    )
    assert msg.status == "refused" and msg.note == "unknown worker token"
    assert msg.token_hash and "bogus" not in msg.token_hash
    ws.scan()
    assert a.read_bytes() == before
    assert any("unknown worker token" in e.text and e.task == "a" for e in _events(ws, "refused"))


# ---------------------------------------------------------------------------------------------------------------
# idempotency and damaged spool files


def _ctx(ws: Workspace) -> Ctx:
    return Ctx(OrchWorkspace(str(ws.root)))


def test_the_same_message_twice_is_applied_once(ws: Workspace) -> None:
    path = _park(ws, "idem")
    record = {"kind": "message", "task": "idem", "text": "only once please", "token": "", "worker": "", "role": "",
              "uid": "00000000000000000001-1-feedbeef", "at": time.time()}
    ows = OrchWorkspace(str(ws.root))
    spool.write(ows, dict(record))
    spool.write(ows, dict(record))  # the same uid twice in the spool is one file
    assert _spooled(ws) == ["00000000000000000001-1-feedbeef.msg"]
    ctx = _ctx(ws)
    try:
        assert drain(ctx) == 1
        assert _said(path) == ["only once please"]
        # the very same spool file arrives again (a writer retried after a crash)
        spool.write(ows, dict(record))
        assert _spooled(ws) == ["00000000000000000001-1-feedbeef.msg"]
        assert drain(ctx) == 0
        assert _spooled(ws) == []
        assert _said(path) == ["only once please"]
        # a crash between writing the task file and marking the message applied: it is applied again, harmlessly
        with ctx.store.tx() as db:
            db.execute("UPDATE messages SET status = 'pending' WHERE uid = ?", (record["uid"],))
        after_first = path.read_bytes()
        assert drain(ctx) == 1
        assert _said(path) == ["only once please"]
        assert path.read_bytes() == after_first
    finally:
        ctx.close()
    assert [m.status for m in _messages(ws)] == ["applied"]


@pytest.mark.parametrize("point", ["task.recorded", "inbox.recorded", "inbox.applied"])
def test_a_batch_cut_short_at_any_step_leaves_no_file_ahead_and_is_applied_once(ws: Workspace, point: str) -> None:
    """Messages are applied in batches: their effects, then each task file once, then their marks. A pass killed at
    any of the three steps leaves no task file with a line orch's record lacks (a task whose record the batch made
    from its file, the case that once put a line twice), and the next pass applies each message once."""
    paths = {slug: _park(ws, slug) for slug in ("one", "two")}  # never seen by a pass: no record yet
    ows = OrchWorkspace(str(ws.root))
    for i in range(40):
        spool.write(ows, {"kind": "message", "task": ("one", "two")[i % 2], "text": f"note {i}", "token": ""})
    killed = ws.orch("scan", env={"ORCH_FAULT": f"{point}:1"}, check=False)
    assert killed.code == -9, killed
    store = Store(str(ws.root / ".orch" / "orch.db"))
    try:
        for slug, path in paths.items():
            recorded = {text for _, text in store.task_log_texts(slug)}
            assert {f"{who}: {text}" for _, who, text in _status_lines(path)} <= recorded, slug
    finally:
        store.close()
    ws.scan()
    for i in range(40):
        assert _said(paths[("one", "two")[i % 2]]).count(f"note {i}") == 1, i
    assert [m.status for m in _messages(ws)] == ["applied"] * 40


def test_a_message_applied_before_a_crash_cut_its_mark_short_is_not_applied_again(ws: Workspace) -> None:
    """Its effect is in orch's record (its status line, by uid): applying it again after the task moved on makes
    no move (a `done:` would otherwise send a task under review back to validation)."""
    from orch.lifecycle import Actor, TaskEvent, TaskState
    from orch.workflow import tasks as T

    path = _park(ws, "once", state="fixing")
    uid = spool.write(OrchWorkspace(str(ws.root)), {"kind": "message", "task": "once", "text": "done: fixed it",
                                                     "token": ""})
    ctx = _ctx(ws)
    try:
        assert drain(ctx) == 1
        assert ctx.store.task_row("once").state == "validating"  # type: ignore[union-attr]
        with ctx.store.tx() as db:  # a crash before its mark
            db.execute("UPDATE messages SET status = 'pending' WHERE uid = ?", (uid,))
        T.move(ctx, "once", TaskState.REVIEWING, TaskEvent.REVIEW, Actor.PASS, status="review started")
        assert drain(ctx) == 1
        assert ctx.store.task_row("once").state == "reviewing"  # type: ignore[union-attr]
    finally:
        ctx.close()
    assert _said(path).count("done: fixed it") == 1
    assert [m.status for m in _messages(ws, "once")] == ["applied"]


def _spool_file(uid: str, **fields: str) -> bytes:
    """A spool file as orch writes it (``orch-message 1`` then ``key=value`` lines)."""
    return spool.encode({"uid": uid, **fields})


def test_corrupt_spool_files_are_set_aside(ws: Workspace) -> None:
    path = _park(ws, "sturdy")
    new = ws.root / ".orch" / "inbox" / "new"
    good = _spool_file("x", kind="message", task="sturdy", text="t", at="1")
    assert spool.decode(good) is not None  # the helper writes what orch reads
    bad = {
        "00000000000000000000-1-00000001.msg": b"\xff\xfe not a record at all",
        "00000000000000000000-1-00000002.msg": b'{"uid": "u2", "task": "sturdy", "text": "json", "at": 1}',
        "00000000000000000000-1-00000003.msg": good.replace(b"\ntext=t\n", b"\ntext t\n"),
        "00000000000000000000-1-00000004.msg": _spool_file("u4", kind="message", task="sturdy", text="t", at="soon"),
        "00000000000000000000-1-00000005.msg": good.replace(b"uid=x\n", b""),
        "00000000000000000000-1-00000006.msg": b"",
        "00000000000000000000-1-00000007.msg": good[:9],
    }
    for name, data in bad.items():
        (new / name).write_bytes(data)
    # and things that are not files orch writes: none is opened in a way that could block, none read unbounded
    os.mkfifo(new / "00000000000000000000-1-00000008.msg")  # opened plainly, a fifo would block the applier
    (new / "00000000000000000000-1-00000009.msg").mkdir()
    (new / "00000000000000000000-1-00000010.msg").symlink_to("/dev/zero")  # read plainly: never ends
    (new / "notes.txt").write_text("a file of someone else's")
    with open(new / "00000000000000000000-1-00000011.msg", "wb") as fh:
        fh.truncate(spool.MAX_RECORD + 1)  # too big to be a message (sparse: takes no room)
    others = [f"00000000000000000000-1-000000{n:02d}.msg" for n in range(8, 12)] + ["notes.txt"]
    ws.orch("-", "task-sturdy: a good message", env={"ORCH_NO_APPLY": "1"})
    ws.orch("-", "task-sturdy: another good one", env={"ORCH_NO_APPLY": "1"})
    assert len(_spooled(ws)) == len(bad) + len(others) + 2
    r = ws.scan()
    assert "Traceback" not in r.err
    assert _said(path) == ["a good message", "another good one"]
    assert _spooled(ws) == []
    aside = ws.root / ".orch" / "inbox" / "bad"
    assert sorted(os.listdir(aside)) == sorted([*bad, *others])
    for name, data in bad.items():
        assert (aside / name).read_bytes() == data
    assert (aside / "00000000000000000000-1-00000010.msg").is_symlink()  # moved as it was, not followed
    assert len([e for e in _events(ws, "inbox") if "set aside" in e.text]) == len(bad) + len(others)
    assert [m.text for m in _messages(ws)] == ["a good message", "another good one"]
    # the next message goes straight through
    ws.orch("-", "task-sturdy: after the bad ones")
    wait_for(lambda: "after the bad ones" in _said(path), what="a later message to be applied")


@pytest.mark.parametrize("at", ["inf", "nan"])
def test_spool_record_with_an_impossible_time_is_neither_fatal_nor_lost(ws: Workspace, at: str) -> None:
    """A well-formed record whose ``at`` is a float but no time must be set aside (or judged), not crash every
    scan and not vanish without a trace."""
    path = _park(ws, "wedge")
    new = ws.root / ".orch" / "inbox" / "new"
    uid = "00000000000000000000-1-0000000a"
    (new / f"{uid}.msg").write_bytes(_spool_file(uid, kind="message", task="wedge", text="odd time", at=at))
    ws.orch("-", "task-wedge: a good message", env={"ORCH_NO_APPLY": "1"})
    r = ws.orch("scan", check=False)
    assert "Traceback" not in r.err, r.err[-600:]
    assert r.code == 0, r.err
    assert "a good message" in _said(path)
    assert _spooled(ws) == []
    # the odd record is accounted for: in the database, or set aside in inbox/bad
    in_store = [m for m in _messages(ws) if m.uid == uid]
    set_aside = (ws.root / ".orch" / "inbox" / "bad" / f"{uid}.msg").exists()
    assert in_store or set_aside, "the message was deleted from the spool without being stored or set aside"
    # and the scans after it are fine too
    r = ws.orch("scan", check=False)
    assert r.code == 0 and "Traceback" not in r.err, r.err[-600:]


def test_hot_path_skips_the_config_after_an_edit(ws: Workspace) -> None:
    """`orch -` must not parse config.toml (TOML and its checks) once a command has read the edited config."""
    _park(ws, "hot")
    cfg = ws.root / ".orch" / "config.toml"
    cfg.write_text(cfg.read_text() + "\n# a comment added by the person\n")
    ws.orch("status")  # reads the edited config: the hot path's tasks_dir cache is now current
    probe = (
        "import sys\n"
        "from orch.entry import main\n"
        "rc = main(['-', 'task-hot: light please'])\n"
        "heavy = sorted(m for m in ('pydantic', 'tomllib', 'sqlite3', 'typer', 'rich') if m in sys.modules)\n"
        "print(rc, ' '.join(heavy))\n"
    )
    proc = subprocess.run([sys.executable, "-c", probe], cwd=ws.root, env={**ws.env, "ORCH_NO_APPLY": "1"},
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["0"], f"the hot path imported: {proc.stdout.strip()}"
    assert len(_spooled(ws)) == 1


def test_a_huge_message_is_kept_whole_and_shown_short(ws: Workspace) -> None:
    """1.5 MB through `orch -`: kept whole in .orch/messages, shortened in the status line, the task file stays a
    task file and the next message is applied as usual; more than 8 MiB is refused in one line."""
    path = _park(ws, "big", state="coding")
    text = "done: " + "".join(f"line {i:07d} of a very long report\n" for i in range(45_000))
    assert len(text) > 1_500_000
    ws.orch("-", input="task-big: " + text)
    wait_for(lambda: _said(path), what="the big message to be applied")
    (line,) = _said(path)
    assert line.startswith("done: line 0000000 of a very long report line 0000001") and len(line) < 2_000
    kept = line.rsplit("the whole message: ", 1)[1].rstrip(")")
    assert (ws.root / kept).read_text().strip() == text.strip()  # the whole message, as it was sent
    assert _summary(path)[0] == "state: validating" and len(path.read_bytes()) < 20_000
    ws.orch("-", "task-big: and a small one")
    wait_for(lambda: "and a small one" in _said(path), what="the next message")
    assert [t["slug"] for t in ws.status()["invalid_tasks"]] == []
    r = ws.orch("-", input="task-big: " + "x" * (9 << 20), check=False)
    one_line_error(r, "larger than 8 MiB", code=2)


def test_identical_messages_each_get_their_line_in_arrival_order(ws: Workspace) -> None:
    path = _park(ws, "same")
    for _ in range(5):
        ws.orch("-", "task-same: ping", env={"ORCH_NO_APPLY": "1"})
    ws.orch("-", "task-same: last", env={"ORCH_NO_APPLY": "1"})
    ws.scan()
    assert _said(path) == ["ping"] * 5 + ["last"]
