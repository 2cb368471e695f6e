"""The workspace: `orch init`, finding the workspace, config.toml, `orch add`, invalid task files, status JSON."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from orch import git
from orch.taskfile import MARKER
from tests.kit.harness import Workspace, one_line_error, scripted_task, wait_for

pytestmark = pytest.mark.tmux


def _real(path: str | Path) -> str:
    return os.path.realpath(str(path))


def _exclude(repo: Path) -> list[str]:
    return (repo / ".git" / "info" / "exclude").read_text().splitlines()


def _bare(repo: Path, socket_name: str, base_env: dict[str, str]) -> Workspace:
    """A Workspace helper for a repository `orch init` has not prepared (yet)."""
    return Workspace(repo, socket_name, base_env)


def _git(repo: Path, *args: str) -> str:
    return git.out(str(repo), *args)


# ---------------------------------------------------------------------------------------------------------------
# orch init


def test_init_creates_the_state_folder_and_excludes(repo: Path, socket_name: str, base_env: dict[str, str]) -> None:
    w = _bare(repo, socket_name, base_env)
    r = w.orch("init")
    assert f"orch workspace ready at {repo}" in r.out
    state = repo / ".orch"
    for folder in ("tasks", "tasks/done", "dossiers", "logs"):
        assert (state / folder).is_dir(), folder
    assert (state / "orch.db").is_file()
    cfg = (state / "config.toml").read_text()
    # every default is shown, commented out: the file sets nothing
    for key in ("tasks_dir", "worktree_root", "branch_prefix", "base", "default_agent", "socket"):
        assert any(line.startswith(f"# {key} = ") for line in cfg.splitlines()), key
    live = [line for line in cfg.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    assert "[tmux]" in live and all(line.startswith("[") and line.endswith("]") for line in live), live
    excl = _exclude(repo)
    assert excl.count("/.orch/") == 1 and excl.count("/.worktree/") == 1
    # git does not see orch's files
    assert _git(repo, "status", "--porcelain") == ""

    # a second run is harmless
    before_cfg = (state / "config.toml").read_bytes()
    before_excl = (repo / ".git" / "info" / "exclude").read_bytes()
    (state / "tasks" / "mine.md").write_text("my task\n")
    r = w.orch("init")
    assert "already an orch workspace" in r.out
    assert (state / "config.toml").read_bytes() == before_cfg
    assert (repo / ".git" / "info" / "exclude").read_bytes() == before_excl
    assert (state / "tasks" / "mine.md").read_text() == "my task\n"
    # from a subfolder it prepares the same repository
    r = w.orch("init", cwd=repo / "src")
    assert "already an orch workspace" in r.out and _exclude(repo) == before_excl.decode().splitlines()
    # a config the person edited is kept as it is
    (state / "config.toml").write_text('branch_prefix = "work/"\n')
    w.orch("init")
    assert (state / "config.toml").read_text() == 'branch_prefix = "work/"\n'


def test_init_outside_git_fails_in_one_line(tmp_path: Path, socket_name: str, base_env: dict[str, str]) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    w = _bare(plain, socket_name, base_env)
    r = w.orch("init", check=False)
    one_line_error(r, "git")
    assert not (plain / ".orch").exists()
    r = w.orch("init", str(tmp_path / "does-not-exist"), check=False)
    one_line_error(r)


def test_commands_outside_a_workspace_say_to_run_init(
    tmp_path: Path, repo: Path, socket_name: str, base_env: dict[str, str]
) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    commands = [("status", "--json"), ("scan",), ("add", "something"), ("close", "x"), ("send", "x", "hi"),
                ("-", "task-x: hi")]
    for args in commands:
        one_line_error(_bare(plain, socket_name, base_env).orch(*args, check=False), "orch init")
    # a git repository `orch init` never touched, from its root and from a subfolder
    for where, args in [(repo, ("status",)), (repo / "src", ("message", "task-x: hi"))]:
        one_line_error(_bare(where, socket_name, base_env).orch(*args, check=False), "orch init")
    assert not (repo / ".orch").exists() and not (plain / ".orch").exists()


# ---------------------------------------------------------------------------------------------------------------
# finding the workspace


def test_discovery_from_subfolder_flag_and_env(ws: Workspace, tmp_path: Path) -> None:
    root = _real(ws.root)
    deep = ws.root / "src" / "a" / "b"
    deep.mkdir(parents=True)
    assert _real(ws.orch("status", "--json", cwd=deep).json()["workspace"]) == root

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert _real(ws.orch("-C", str(ws.root), "status", "--json", cwd=elsewhere).json()["workspace"]) == root
    assert _real(ws.orch("--workspace", str(deep), "status", "--json", cwd=elsewhere).json()["workspace"]) == root
    assert _real(ws.orch("status", "--json", cwd=elsewhere, env={"ORCH_WORKSPACE": str(ws.root)}).json()["workspace"]) \
        == root

    # -C wins over $ORCH_WORKSPACE, which wins over the current folder
    other_repo = tmp_path / "other"
    git.init_repo(str(other_repo))
    other = Workspace(other_repo, ws.socket, ws.env)
    other.orch("init")
    got = ws.orch("-C", str(ws.root), "status", "--json", cwd=other_repo, env={"ORCH_WORKSPACE": str(other_repo)})
    assert _real(got.json()["workspace"]) == root
    got = ws.orch("status", "--json", cwd=ws.root, env={"ORCH_WORKSPACE": str(other_repo)})
    assert _real(got.json()["workspace"]) == _real(other_repo)

    # the hot path finds it the same ways
    ws.task("found", "---\ndepends_on: [never-closes]\n---\nx\n")
    ws.orch("-C", str(ws.root), "-", "task-found: via -C", cwd=elsewhere)
    ws.orch("-", "task-found: via env", cwd=elsewhere, env={"ORCH_WORKSPACE": str(ws.root)})
    ws.orch("-", "task-found: via subfolder", cwd=deep)
    wait_for(lambda: all(s in (ws.tasks / "found.md").read_text() for s in ("via -C", "via env", "via subfolder")),
             what="the three messages")

    # a -C or $ORCH_WORKSPACE that is no workspace is an error, not a fallback to the current folder
    r = ws.orch("-C", str(elsewhere), "status", check=False)
    one_line_error(r, "no orch workspace at", str(elsewhere), "orch init")
    r = ws.orch("status", check=False, env={"ORCH_WORKSPACE": str(elsewhere)})
    one_line_error(r, "no orch workspace at")
    r = ws.orch("-C", str(elsewhere), "-", "task-found: x", check=False)
    one_line_error(r, "no orch workspace at")


def test_discovery_from_inside_a_task_worktree(ws: Workspace) -> None:
    ws.task("inside", scripted_task("say ready", "wait"))
    ws.scan()
    worktree = Path(ws.task_status("inside")["worktree"])
    assert worktree.is_dir() and (worktree / ".git").is_file()
    sub = worktree / "src"
    for cwd in (worktree, sub):
        st = ws.orch("status", "--json", cwd=cwd).json()
        assert _real(st["workspace"]) == _real(ws.root)
        assert [t["slug"] for t in st["tasks"]] == ["inside"]
    # a user message from inside the worktree reaches the task
    ws.orch("-", "task-inside: written from the worktree", cwd=sub)
    wait_for(lambda: "user: written from the worktree" in (ws.tasks / "inside.md").read_text(), what="the message")
    # orch init from the worktree prepares the main repository, it does not create a second workspace
    r = ws.orch("init", cwd=worktree)
    assert "already an orch workspace" in r.out
    assert not (worktree / ".orch").exists()


# ---------------------------------------------------------------------------------------------------------------
# config.toml


def test_invalid_toml_is_one_line_naming_the_file(ws: Workspace) -> None:
    cfg = ws.root / ".orch" / "config.toml"
    cfg.write_text('default_agent = "scripted"\ntasks_dir = [unclosed\n')
    for args in (("status", "--json"), ("add", "x")):
        one_line_error(ws.orch(*args, check=False), "config.toml", "TOML")


def test_bad_config_values_are_one_line(ws: Workspace) -> None:
    cfg = ws.root / ".orch" / "config.toml"
    for text, needle in [
        ('colour = "red"\n', "colour"),
        ('[tmux]\nsokcet = "x"\n', "sokcet"),
        ("tasks_dir = 5\n", "tasks_dir"),
        ('[agents.mine]\nprompt = "paste"\n', "command"),
        ('[agents.mine]\ncommand = "x"\nready_pattern = "("\n', "ready_pattern"),
        ('[tmux]\nsocket = "orch"\n\nmax_review_rounds = 5\n',  # a key appended below a table lands in it
         "max_review_rounds is not a setting of [tmux]: in TOML a key belongs to the last [table] above it"),
        ('colour = "red"\n', "unknown setting 'colour' (known: "),
        ("scan_interval = nan\n", "scan_interval: must be a finite number"),
        ("idle_reminder_after = -1\n", "idle_reminder_after: must be at least 0 (it is -1)"),
        ("[validate]\ntimeout = inf\n", "timeout in [validate]: must be a finite number"),
        ('[tmux]\nsocket = "a;b"\n', "socket in [tmux]: must be a plain name"),
        ('[agents.mine]\ncommand = ["x"]\nready_timeout = -5\n', "ready_timeout in [agents.mine]: must be more than 0"),
    ]:
        cfg.write_text(text)
        one_line_error(ws.orch("status", check=False), "config.toml", needle)


def test_version_unknown_tasks_and_a_repository_without_commits(ws: Workspace, tmp_path: Path) -> None:
    import orch

    for flag in ("--version", "-V"):
        assert ws.orch(flag).out.startswith(f"orch {orch.__version__} (Python 3.")
    for command in ("dossier", "log", "diff", "status", "retry", "close"):
        one_line_error(ws.orch(command, "nosuch", check=False), "no task 'nosuch'")
    empty = tmp_path / "empty"
    empty.mkdir()
    subprocess.run(["git", "init", "-q", str(empty)], check=True)
    ws.orch("init", str(empty))
    assert ws.orch("-C", str(empty), "gc").out.strip() == "nothing stale"


def test_tasks_dir_outside_the_repository(ws: Workspace, tmp_path: Path) -> None:
    outside = tmp_path / "my tasks"
    cfg = ws.root / ".orch" / "config.toml"
    cfg.write_text(f'default_agent = "scripted"\ntasks_dir = "{outside}"\n')
    r = ws.orch("add", "--slug", "ext", scripted_task("say external task running", "wait"))
    assert (outside / "ext.md").is_file()
    assert str(outside / "ext.md") in r.out
    assert not (ws.tasks / "ext.md").exists()
    out = ws.scan().out
    assert "started: ext" in out
    t = ws.task_status("ext")
    assert t["file"] == str(outside / "ext.md")
    assert t["state"] == "coding"
    wait_for(lambda: "external task running" in ws.screen("ext"), what="the external task's agent")
    # the hot path follows the configured folder too
    ws.orch("-", "task-ext: note for the external task")
    wait_for(lambda: "user: note for the external task" in (outside / "ext.md").read_text(), what="the note")
    # close files it under <tasks_dir>/done
    ws.orch("close", "ext")
    assert (outside / "done" / "ext.md").is_file() and not (outside / "ext.md").exists()
    # a task folder that does not exist is one line, not a crash
    cfg.write_text(f'default_agent = "scripted"\ntasks_dir = "{tmp_path / "missing"}"\n')
    one_line_error(ws.orch("status", check=False), "does not exist")
    one_line_error(ws.orch("scan", check=False), "does not exist")


# ---------------------------------------------------------------------------------------------------------------
# orch add


def test_add_derives_the_slug(ws: Workspace) -> None:
    r = ws.orch("add", "Fix the login bug")
    path = ws.tasks / "fix-the-login-bug.md"
    assert path.read_text() == "Fix the login bug\n"
    assert "queued fix-the-login-bug" in r.out
    # the same text again gets a fresh name, never overwrites
    ws.orch("add", "Fix", "the", "login", "bug")
    assert (ws.tasks / "fix-the-login-bug-2.md").read_text() == "Fix the login bug\n"
    assert path.read_text() == "Fix the login bug\n"
    t = ws.task_status("fix-the-login-bug")
    assert t["state"] == "queued" and t["workers"] == [] and t["agent"] == "scripted"
    # nor does it reuse the name of a closed task
    ws.orch("close", "fix-the-login-bug-2")
    assert (ws.tasks / "done" / "fix-the-login-bug-2.md").is_file()
    r = ws.orch("add", "Fix the login bug")
    assert (ws.tasks / "fix-the-login-bug-3.md").is_file() and "fix-the-login-bug-3" in r.out


def test_add_with_slug_and_agent_and_refusals(ws: Workspace) -> None:
    ws.orch("add", "--slug", "docs", "--agent", "scripted", "Document the flags")
    text = (ws.tasks / "docs.md").read_text()
    assert text == '---\nagent: "scripted"\n---\n\nDocument the flags\n'
    ws.orch("add", "-s", "other-agent", "-a", "codex", "Another one")
    st = {t["slug"]: t for t in ws.status()["tasks"]}
    assert st["docs"]["agent"] == "scripted"
    assert st["other-agent"]["agent"] == "codex"
    assert ws.status()["invalid_tasks"] == []
    _add_refusals(ws)


def test_add_refuses_bad_slugs(ws: Workspace) -> None:
    for args, needle in [
        (("--slug", "@60"), "must start with"),
        (("--slug", "a:b"), "':'"),
        (("--slug", "-1"), "must start with"),
        (("--slug", "Upper"), "must start with"),
        (("--slug", "a" * 65), "longer than"),
    ]:
        r = ws.orch("add", *args, "some text", check=False)
        one_line_error(r, needle)
    assert sorted(p.name for p in ws.tasks.glob("*.md")) == []


def _add_refusals(ws: Workspace) -> None:
    """Duplicates, unknown agents and empty texts are refused in one line, and nothing is written."""
    ws.orch("add", "--slug", "dup", "first")
    r = ws.orch("add", "--slug", "dup", "second", check=False)
    one_line_error(r, "'dup' already exists")
    assert (ws.tasks / "dup.md").read_text() == "first\n"
    r = ws.orch("add", "--slug", "agentless", "--agent", "nosuch", "text", check=False)
    one_line_error(r, "unknown agent 'nosuch'", "scripted")
    assert not (ws.tasks / "agentless.md").exists()
    r = ws.orch("add", "--slug", "empty", "   ", check=False)
    one_line_error(r, "empty")
    assert not (ws.tasks / "empty.md").exists()
    r = ws.orch("add", check=False)
    one_line_error(r)


# ---------------------------------------------------------------------------------------------------------------
# invalid task files


def test_invalid_task_files_are_listed_and_never_rewritten(ws: Workspace) -> None:
    files = {
        "Bad Name.md": b"a task with a bad name\n",
        "@60.md": b"looks like a tmux window id\n",
        "bin.md": b"\xff\xfe",
        "yaml.md": b"---\nagent: [unclosed\n---\ntext\n",
        "list-front.md": b"---\n- a\n- b\n---\ntext\n",
        "bad-dep.md": b"---\ndepends_on: ['@1']\n---\ntext\n",
    }
    for name, data in files.items():
        (ws.tasks / name).write_bytes(data)
    (ws.tasks / "notes.txt").write_text("not a task\n")
    ws.task("good", scripted_task("say good task is running", "wait"))

    st = ws.status()
    invalid = {i["file"]: i["error"] for i in st["invalid_tasks"]}
    assert set(invalid) == set(files), invalid
    assert "must start with" in invalid["@60.md"]
    assert "UTF-8" in invalid["bin.md"]
    assert "YAML" in invalid["yaml.md"]
    assert all("\n" not in e for e in invalid.values())
    assert [t["slug"] for t in st["tasks"]] == ["good"]

    r = ws.scan()
    assert "started: good" in r.out
    for name in files:
        assert f"invalid task file {name}: " in r.out, name
    assert "notes.txt" not in r.out
    scan_json = ws.orch("scan", "--json").json()
    assert {i["file"] for i in scan_json["invalid"]} == set(files)
    text = ws.orch("status").out
    assert "invalid task files" in text and "bin.md" in text
    for name, data in files.items():
        assert (ws.tasks / name).read_bytes() == data, name
    assert sorted(p.name for p in ws.tasks.iterdir() if p.is_file()) == sorted([*files, "notes.txt", "good.md"])
    wait_for(lambda: "good task is running" in ws.screen("good"), what="the valid task to run")
    assert ws.task_status("good")["state"] == "coding"
    # no worktree or session was made for an invalid file
    assert sorted(p.name for p in (ws.root / ".worktree").iterdir()) == ["good"]
    assert ws.tmux("list-sessions", "-F", "#{session_name}").split() == ["task-good"]


# ---------------------------------------------------------------------------------------------------------------
# status --json


TOP_KEYS = {"version", "workspace", "tmux_socket", "sandbox", "daemon", "tasks", "orphans", "invalid_tasks"}
TASK_KEYS = {"slug", "file", "state", "summary", "session", "worktree", "branch", "agent", "depends_on", "last_status",
             "pending_messages", "queued_for_workers", "workers", "pull_request", "next", "conflicts", "host"}
WORKER_KEYS = {"id", "address", "role", "agent", "state", "state_for_s", "exit_status", "session", "session_id",
               "window_id", "pane_id", "pane_pid", "worktree", "branch", "agent_session", "note",
               "sandbox", "state_since"}


def test_status_json_shape(ws: Workspace) -> None:
    empty = ws.status()
    assert set(empty) == TOP_KEYS
    assert empty["version"] == 1 and empty["tasks"] == [] and empty["orphans"] == [] and empty["invalid_tasks"] == []
    assert empty["tmux_socket"] == ws.socket
    assert _real(empty["workspace"]) == _real(ws.root)
    assert "no tasks in this workspace" in ws.orch("status").out

    ws.task("shape", scripted_task("say shaping", "wait"))
    ws.task("later", "---\ndepends_on: [shape]\n---\nwaits for shape\n")
    ws.scan()
    # the coder's turn over and its hooks applied: no applier they started can take the note below
    wait_for(lambda: ws.task_status("shape")["workers"][0]["state"] == "idle"
             and not any((ws.root / ".orch" / "inbox" / "new").iterdir()), what="the coder's hooks")
    ws.orch("-", "task-later: a pending note", env={"ORCH_NO_APPLY": "1"})
    st = ws.status()
    assert set(st) == TOP_KEYS
    tasks = {t["slug"]: t for t in st["tasks"]}
    assert list(tasks) == ["later", "shape"]
    for t in tasks.values():
        assert set(t) == TASK_KEYS, set(t) ^ TASK_KEYS
    later, shape = tasks["later"], tasks["shape"]
    assert later["state"] == "queued" and later["workers"] == [] and later["depends_on"] == ["shape"]
    assert later["session"] is None and later["worktree"] is None and later["branch"] is None
    assert later["file"] == str(ws.tasks / "later.md")
    # the spooled note is not in the database yet: pending_messages counts imported, unapplied messages
    assert later["pending_messages"] == 0

    assert shape["state"] == "coding" and shape["agent"] == "scripted" and shape["depends_on"] == []
    assert shape["summary"][0] == "state: coding"
    assert shape["session"] == "task-shape"
    assert shape["worktree"] == str(ws.root / ".worktree" / "shape")
    assert shape["branch"] == "orch/shape"
    assert "coder started" in shape["last_status"]
    (w,) = shape["workers"]
    assert set(w) == WORKER_KEYS, set(w) ^ WORKER_KEYS
    assert w["id"].startswith("shape:coder:") and w["address"] == "shape" and w["role"] == "coder"
    assert w["agent"] == "scripted" and w["state"] in ("starting", "working", "idle") and w["exit_status"] is None
    assert isinstance(w["state_for_s"], (int, float)) and w["state_for_s"] >= 0
    assert w["session"] == "task-shape"
    assert w["session_id"].startswith("$") and w["window_id"].startswith("@") and w["pane_id"].startswith("%")
    assert isinstance(w["pane_pid"], int) and w["pane_pid"] > 0
    assert w["worktree"] == shape["worktree"] and w["branch"] == "orch/shape"
    panes = ws.tmux("list-panes", "-a", "-F", "#{session_id} #{window_id} #{pane_id} #{pane_pid}").split("\n")
    assert f"{w['session_id']} {w['window_id']} {w['pane_id']} {w['pane_pid']}" in panes


# ---------------------------------------------------------------------------------------------------------------
# the person's text survives a whole run


def test_person_bytes_survive_spawn_and_messages(ws: Workspace) -> None:
    original = (
        "# Keep my bytes \u00e9\u4e2d\r\n"
        "\r\n"
        "Trailing spaces stay   \r\n"
        "\r\n"
        "```markdown\r\n"
        "## Status\r\n"
        "- 2020-01-01T00:00:00Z not orch's line\r\n"
        "## Summary\r\n"
        "state: done\r\n"
        "```\r\n"
        "\r\n"
        "```scripted\r\n"
        'report "progress one"\r\n'
        'report "needs input: crlf or lf?"\r\n'
        "wait\r\n"
        "```\r\n"
        "\r\n"
        "last line without a newline"
    ).encode()
    path = ws.tasks / "keep.md"
    path.write_bytes(original)
    assert "started: keep" in ws.scan().out
    wait_for(lambda: b"question: crlf or lf?" in path.read_bytes(), timeout=30, what="the coder's question")
    ws.orch("-", "task-keep: a note from the user")
    wait_for(lambda: b"user: a note from the user" in path.read_bytes(), what="the user's note")
    ws.scan()
    data = path.read_bytes()
    assert data.startswith(original)
    block = data[len(original):]
    assert block.startswith(b"\r\n" + MARKER.encode() + b"\r\n")
    assert b"\n" not in block.replace(b"\r\n", b"")  # the block follows the person's CRLF
    assert data.count(MARKER.encode()) == 1
    t = ws.task_status("keep")
    assert t["state"] == "needs-input" and "question: crlf or lf?" in t["summary"]
    said = [line for line in block.decode().split("\r\n") if line.startswith("- ")]
    assert any(line.endswith(" coder: progress one") for line in said)
    assert any(line.endswith(" user: a note from the user") for line in said)
    # the prompt the agent got carried the person's text
    prompt = (ws.root / ".orch" / "prompts" / "keep-coder-1.md").read_text()
    assert "last line without a newline" in prompt and "not orch's line" in prompt


def test_git_never_sees_orch_files(ws: Workspace) -> None:
    ws.task("quiet", scripted_task("write new.txt hello", "commit 'add new.txt'", 'report "committed"', "wait"))
    ws.scan()
    wait_for(lambda: " coder: committed\n" in (ws.tasks / "quiet.md").read_text(), timeout=30, what="the commit")
    assert _git(ws.root, "status", "--porcelain") == ""
    proc = subprocess.run(["git", "-C", str(ws.root), "log", "--format=%s", "orch/quiet"], capture_output=True,
                          text=True, check=True)
    assert proc.stdout.splitlines()[0] == "add new.txt"


def test_shell_completion_of_commands_options_and_task_names(ws: Workspace, tmp_path: Path) -> None:
    ws.task("csv-export", "x\n")
    script = tmp_path / "orch.bash"
    script.write_text(ws.orch("completion", "bash").out)
    shim = tmp_path / "bin"
    shim.mkdir()
    (shim / "orch").write_text(f"#!/bin/sh\nexec {sys.executable} -m orch \"$@\"\n")
    (shim / "orch").chmod(0o755)

    def complete(*words: str) -> list[str]:
        line = " ".join(words)
        probe = (f'source {script}; COMP_WORDS=({line}); COMP_CWORD={len(words) - 1}; _orch; '
                 'printf "%s\\n" "${COMPREPLY[@]}"')
        env = {**ws.env, "PATH": f"{shim}:{ws.env['PATH']}"}
        out = subprocess.run(["bash", "-c", probe], cwd=ws.root, env=env, capture_output=True, text=True, check=True)
        return sorted(x for x in out.stdout.split("\n") if x)

    assert complete("orch", "sta") == ["start", "status"]
    assert complete("orch", "status", "--w") == ["--watch"]
    assert complete("orch", "status", "csv") == ["csv-export", "csv-export:reviewer"]
    assert complete("orch", "diff", "") == ["csv-export", "csv-export:reviewer"]
    for shell in ("zsh", "fish"):
        text = ws.orch("completion", shell).out
        assert "status" in text and "orch _tasks" in text
    one_line_error(ws.orch("completion", "tcsh", check=False), "no completion for 'tcsh'")
