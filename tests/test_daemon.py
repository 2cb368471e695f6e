"""`orch run`: the daemon reacts to task files and messages as they arrive, is alone per workspace, ends cleanly,
and loses nothing when killed with -9 in the middle of a burst. Real tmux, real git, the scripted agent."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from orch import inbox as spool
from orch.store import Store
from orch.taskfile import MARKER, parse
from orch.workspace import Workspace as OrchWorkspace
from orch.workspace import daemon_pid
from tests.kit.harness import Daemon, Workspace, one_line_error, scripted_task, wait_for

pytestmark = [pytest.mark.tmux, pytest.mark.timeout(300)]


@pytest.fixture
def daemon(ws: Workspace, tmp_path: Path) -> Iterator[Daemon]:
    yield ws.daemon(tmp_path / "daemon.out")  # stopped by the ws fixture


def log_lines(ws: Workspace) -> list[str]:
    return (ws.root / ".orch" / "logs" / "orch.log").read_text().splitlines()


def test_daemon_starts_new_tasks_and_applies_messages_by_itself(ws: Workspace, daemon: Daemon) -> None:
    daemon.start()
    # a task dropped into the folder: no `orch scan` is run by the test
    ws.task("greet", scripted_task("wait"))
    started = time.monotonic()
    wait_for(lambda: (s := ws.task_status("greet"))["workers"] and s["state"] == "coding", 30,
             "the daemon to start the coder")
    print(f"task picked up by the daemon after {time.monotonic() - started:.2f}s")
    # a message: with a daemon running, `orch -` leaves the applying to it
    ws.orch("-", "task-greet: progress: halfway")
    started = time.monotonic()
    wait_for(lambda: "user: progress: halfway" in (ws.tasks / "greet.md").read_text(), 30, "the daemon to apply it")
    print(f"message applied by the daemon after {time.monotonic() - started:.2f}s")
    # it was the daemon that applied it: orch.log lines carry the writer's pid
    applied = wait_for(lambda: [line for line in log_lines(ws) if "progress: halfway" in line], 10, "the log line")
    assert all(f" {daemon.pid} " in line for line in applied), applied
    # an edit by the person is picked up too (here: a dependency on a task that does not exist yet)
    ws.task("second", "---\ndepends_on: [greet]\n---\nAfter greet.\n")
    try:
        wait_for(lambda: "waiting: second" in daemon.log.read_text(), 30, "the daemon to see the new task")
    finally:
        print(daemon.log.read_text())


def test_a_second_daemon_is_refused_and_stop_leaves_workers_running(ws: Workspace, daemon: Daemon) -> None:
    assert "daemon: not running - tasks move only when you run `orch scan`" in ws.orch("status").out
    assert ws.status()["daemon"] == {"running": False, "pid": None, "since": None}
    daemon.start()
    ws.task("keep", scripted_task("wait"))
    wait_for(lambda: ws.task_status("keep")["workers"], 30, "the coder")
    assert f"daemon: running (pid {daemon.pid} since " in ws.orch("status").out
    shown = ws.status()["daemon"]
    assert shown["running"] and shown["pid"] == daemon.pid and abs(shown["since"] - time.time()) < 120
    one_line_error(ws.orch("run", check=False), "already running", f"pid {daemon.pid}")
    one_line_error(ws.orch("run", "--detach", check=False), "already running", f"pid {daemon.pid}")
    worker = ws.task_status("keep")["workers"][0]
    daemon.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
    assert daemon.proc.wait(30) == 0  # type: ignore[union-attr]
    assert "orch daemon stopped" in daemon.log.read_text()
    assert not (ws.root / ".orch" / "daemon.pid").exists()
    # the worker is still there, the same process in the same pane
    panes = ws.tmux("list-panes", "-a", "-F", "#{pane_id} #{pane_pid} #{pane_dead}").split("\n")
    assert f"{worker['pane_id']} {worker['pane_pid']} 0" in panes
    one_line_error(ws.orch("stop", check=False), "no orch daemon is running")
    # detached: started, found, stopped by `orch stop`
    r = ws.orch("run", "--detach")
    assert "orch daemon running (pid" in r.out
    pid = int(r.out.split("(pid ")[1].split(")")[0])
    assert int((ws.root / ".orch" / "daemon.pid").read_text()) == pid
    assert f"pid {pid}" in ws.orch("stop").out
    assert daemon_pid(OrchWorkspace(str(ws.root))) is None  # `orch stop` returned after the daemon let go
    assert "orch daemon stopped" in (ws.root / ".orch" / "logs" / "daemon.log").read_text()


def test_kill_9_during_a_burst_loses_no_message_and_tears_no_file(ws: Workspace, daemon: Daemon) -> None:
    slugs = [f"t{i}" for i in range(4)]
    for slug in slugs:
        ws.task(slug, scripted_task("wait", intro=f"Task {slug}: the person's text.\n\nKeep this line."))
    ws.scan()
    for slug in slugs:
        assert ws.task_status(slug)["state"] == "coding"
    daemon.start()
    orch_ws = OrchWorkspace(str(ws.root))
    sent: list[str] = []
    lock = threading.Lock()

    def writer(n: int) -> None:
        for i in range(125):
            slug = slugs[(n + i) % len(slugs)]
            text = f"progress: writer {n} message {i}"
            spool.write(orch_ws, {"kind": "message", "task": slug, "text": text, "token": "", "worker": "", "role": ""})
            with lock:
                sent.append(f"{slug}|{text}")

    edits: list[str] = []

    def person() -> None:
        for i in range(20):
            mark = len(sent) + random.randint(2, 20)  # spread over the burst
            wait_for(lambda mark=mark: len(sent) >= mark or len(sent) >= 480, 60, "more messages")
            slug = slugs[i % len(slugs)]
            path = ws.tasks / f"{slug}.md"
            text = path.read_text()
            mine, sep, rest = text.partition(MARKER)
            line = f"A note the person added, number {i}."
            path.write_text(mine.rstrip("\n") + f"\n{line}\n\n" + sep + rest)  # in place, as editors do
            edits.append(f"{slug}|{line}")

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)] + [threading.Thread(target=person)]
    for t in threads:
        t.start()
    wait_for(lambda: len(sent) >= 150, 60, "the burst to be under way")
    daemon.proc.kill()  # type: ignore[union-attr]  # kill -9 in the middle of it
    daemon.proc.wait(30)  # type: ignore[union-attr]
    for t in threads:
        t.join()
    assert len(sent) == 500 and len(edits) == 20
    daemon.start()  # a new daemon takes over; the stale pid file does not stop it

    def all_applied() -> bool:
        store = Store(str(ws.root / ".orch" / "orch.db"))
        try:
            rows = store.db.execute("SELECT status, COUNT(*) FROM messages WHERE kind = 'message' GROUP BY status").fetchall()
        finally:
            store.close()
        return dict(rows).get("applied") == 500 and not spool.pending(orch_ws)

    wait_for(all_applied, 120, "every message to be applied after the restart")
    for slug in slugs:
        text = (ws.tasks / f"{slug}.md").read_text()
        doc = parse(text)  # every file parses
        assert f"Task {slug}: the person's text." in doc.person and "Keep this line." in doc.person
        for item in edits:
            s, line = item.split("|")
            if s == slug:
                assert doc.person.count(line) == 1, (slug, line)
        for item in sent:
            s, message = item.split("|")
            if s == slug:
                assert sum(1 for st in doc.status if st.endswith(f"user: {message}")) == 1, (slug, message)
    print(f"burst: {len(sent)} messages and {len(edits)} edits, daemon killed with -9 after {150}+ messages; none lost")


def test_sigterm_in_a_pass_finishes_the_write_in_hand(ws: Workspace, daemon: Daemon) -> None:
    daemon.start()
    for i in range(3):
        ws.task(f"s{i}", scripted_task("wait"))
    daemon.proc.send_signal(signal.SIGINT)  # type: ignore[union-attr]
    assert daemon.proc.wait(60) == 0  # type: ignore[union-attr]
    for i in range(3):
        parse((ws.tasks / f"s{i}.md").read_text())


def test_log_follow_prints_new_events_as_they_happen(ws: Workspace, tmp_path: Path) -> None:
    ws.task("watched", "A task to watch.\n")
    out = open(tmp_path / "follow.out", "wb")  # noqa: SIM115 - the child writes it
    follow = subprocess.Popen([sys.executable, "-m", "orch", "log", "watched", "--follow"], cwd=ws.root, env=ws.env,
                              stdout=out, stderr=subprocess.STDOUT)
    out.close()
    try:
        ws.orch("-", "task-watched: progress: first")
        wait_for(lambda: "user: progress: first" in (tmp_path / "follow.out").read_text(), 30, "the first event")
        ws.orch("-", "task-watched: progress: second")
        wait_for(lambda: "user: progress: second" in (tmp_path / "follow.out").read_text(), 30, "the second event")
        assert follow.poll() is None  # still following
        lines = (tmp_path / "follow.out").read_text().splitlines()
        first = [i for i, line in enumerate(lines) if "user: progress: first" in line]
        second = [i for i, line in enumerate(lines) if "user: progress: second" in line]
        assert len(first) == 1 and len(second) == 1, lines  # each event printed once
        assert first[0] < second[0], lines  # newest last
    finally:
        follow.send_signal(signal.SIGINT)
        follow.wait(30)


def test_the_daemon_takes_a_validation_result_as_soon_as_the_job_ends(ws: Workspace, daemon: Daemon) -> None:
    """Validation runs in a background job; its end wakes the daemon, which moves the task on without waiting for
    its next full pass (set far away here)."""
    ws.config("scan_interval = 600")
    daemon.start()
    ws.task("bg", """Validated in the background.

## Validation
- `sleep 1 && test -f bg.txt`

```scripted
coder:
  write bg.txt "x"
  commit "bg"
  report "done: bg"
reviewer:
  verdict approve
```
""")
    try:
        wait_for(lambda: ws.task_status("bg")["state"] == "ready", 60, "the task to be ready")
    finally:
        print(daemon.log.read_text()[-3000:], ws.orch("log", "bg", "-n", "40").out)
    assert any("validation of" in s and "started in the background" in s for s in ws.statuses("bg"))
    assert any(s.startswith("validation: 1/1 command(s) passed") for s in ws.statuses("bg"))


def test_the_daemon_reminds_an_idle_coder_on_time_between_full_passes(ws: Workspace, daemon: Daemon) -> None:
    """The reminder falls due between two full passes (set far apart here): the daemon looks again in time."""
    ws.config("scan_interval = 600\nidle_reminder_after = 1")
    daemon.start()
    ws.task("quiet", scripted_task("say nothing to report", "wait", intro="A coder that forgets to report."))
    wait_for(lambda: any("reminder" in x for x in ws.statuses("quiet")), 30, "the reminder")


def test_sigterm_with_a_backlog_stops_soon_and_the_rest_is_applied_later(ws: Workspace, daemon: Daemon) -> None:
    """A stop asked in the middle of a long backlog of messages ends the daemon before the backlog does; what it
    left is still pending, and the next pass applies it, each message once."""
    ws.task("backlog", "---\nhold: true\n---\nA task with a lot to hear.\n")
    total = 5000  # (applied in batches of inbox.BATCH at a few thousand a second: a stop lands before the end)
    orch_ws = OrchWorkspace(str(ws.root))
    for i in range(total):
        spool.write(orch_ws, {"kind": "message", "task": "backlog", "text": f"note {i}", "token": ""})

    def applied() -> int:
        store = Store(str(ws.root / ".orch" / "orch.db"))
        try:
            return sum(1 for m in store.messages("backlog", limit=10 * total) if m.status == "applied")
        finally:
            store.close()

    daemon.start()
    wait_for(lambda: applied() > 0, 60, "the daemon to start on the backlog")
    daemon.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
    assert daemon.proc.wait(60) == 0  # type: ignore[union-attr]
    assert applied() < total  # it stopped before the end of the backlog
    ws.scan()
    assert applied() == total
    text = (ws.tasks / "backlog.md").read_text()
    assert all(text.count(f"user: note {i}\n") == 1 for i in range(total))
