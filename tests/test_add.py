"""Writing tasks: `orch add -` (standard input), `orch add --edit` (your editor, on a template), `--hold` and
`hold: true` (queued until `orch start`), and a task file still being written is not started by the daemon until
it rests. Real tmux, real git, the scripted agent."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.kit.harness import Workspace, one_line_error, scripted_task, wait_for

pytestmark = [pytest.mark.tmux, pytest.mark.timeout(300)]

EDITOR = '''import sys
path = sys.argv[1]
text = open(path).read()
# the person writes the title and text above the template, and fills in the Validation bullet only
text = "Write the docs\\n\\nEvery flag, with an example.\\n" + text
head, _, tail = text.partition("## Validation\\n-")
open(path, "w").write(head + "## Validation\\n- `test -f docs.md`" + tail)
'''


def editor(tmp_path: Path, body: str) -> str:
    script = tmp_path / "editor.py"
    script.write_text(body)
    return f"{sys.executable} {script}"


def test_add_reads_a_multi_line_task_from_standard_input(ws: Workspace) -> None:
    text = "# Fix the flaky login test\n\nIt fails one run in ten.\n\n## Validation\n- `test -f fixed.txt`\n"
    r = ws.orch("add", "-", input=text)
    assert r.out.startswith("queued fix-the-flaky-login-test ")
    assert (ws.tasks / "fix-the-flaky-login-test.md").read_text() == text
    assert ws.task_status("fix-the-flaky-login-test")["state"] == "queued"
    one_line_error(ws.orch("add", "-", input="  \n", check=False), "the task text is empty: nothing was added")
    one_line_error(ws.orch("add", check=False), "orch add needs the task")


def test_add_edit_writes_the_task_in_your_editor_from_a_template(ws: Workspace, tmp_path: Path) -> None:
    r = ws.orch("add", "--edit", env={"EDITOR": editor(tmp_path, EDITOR), "VISUAL": ""})
    assert r.out.startswith("queued write-the-docs ")
    text = (ws.tasks / "write-the-docs.md").read_text()
    assert text == "Write the docs\n\nEvery flag, with an example.\n\n## Validation\n- `test -f docs.md`\n", text
    # an editor that leaves the template as it was: nothing is added; one that fails: nothing either
    unchanged = editor(tmp_path, "pass\n")
    one_line_error(ws.orch("add", "--edit", env={"EDITOR": unchanged, "VISUAL": ""}, check=False),
                   "the task text is empty")
    failing = editor(tmp_path, "raise SystemExit(3)\n")
    one_line_error(ws.orch("add", "--edit", env={"EDITOR": failing, "VISUAL": ""}, check=False), "exited with status 3")
    assert sorted(p.name for p in ws.tasks.glob("*.md")) == ["write-the-docs.md"]


def test_a_held_task_waits_for_orch_start(ws: Workspace) -> None:
    r = ws.orch("add", "--hold", "--slug", "later", "Do it later")
    assert "held: `orch start later` starts it" in r.out
    assert (ws.tasks / "later.md").read_text().startswith("---\nhold: true\n---\n")
    ws.task("held", "---\nhold: true\n---\n" + scripted_task("wait"))
    for _ in range(2):
        out = ws.scan().out
    assert "waiting: held (for `orch start held` (hold: true))" in out, out
    assert ws.task_status("held")["state"] == "queued" and not ws.task_status("held")["workers"]
    assert ws.tmux("list-windows", "-a", check=False).strip() == ""
    r = ws.orch("start", "held")
    assert r.out.startswith("started held")
    assert ws.task_status("held")["state"] == "coding"
    one_line_error(ws.orch("add", "--hold", "--slug", "held", "again", check=False), "already exists")


def test_the_daemon_starts_a_task_file_once_its_author_stopped_writing(ws: Workspace, tmp_path: Path) -> None:
    """An editor's first save, then more: the coder's prompt has all of it."""
    log = tmp_path / "daemon.out"
    ws.daemon(log).start()
    path = ws.tasks / "growing.md"
    path.write_text(scripted_task("wait", intro="A task written in two saves."))
    # the daemon has seen the first save, and holds the task back while its author may still be writing
    wait_for(lambda: "settling: growing" in log.read_text(), 30, "the daemon to see the first save")
    with path.open("a") as fh:
        fh.write("\n## Requirements\n- the second save is in the prompt\n")
    wait_for(lambda: ws.task_status("growing")["state"] == "coding", 30, "the coder to start")
    prompt = (ws.root / ".orch" / "prompts" / "growing-coder-1.md").read_text()
    assert "- the second save is in the prompt" in prompt


def test_a_piped_task_keeps_its_own_front_matter(ws: Workspace) -> None:
    ws.task("x", "x\n")
    text = "---\ndepends_on: [x]\n---\n# Migrate the schema\n\nOnce x is closed.\n"
    r = ws.orch("add", "-", "--hold", input=text)
    assert r.out.startswith("queued migrate-the-schema ")
    written = (ws.tasks / "migrate-the-schema.md").read_text()
    assert written == "---\ndepends_on: [x]\nhold: true\n---\n\n# Migrate the schema\n\nOnce x is closed.\n", written
    assert ws.task_status("migrate-the-schema")["depends_on"] == ["x"]
