"""Two workspaces on one tmux server, with tasks of the same name: neither ever sees, adopts, types into or kills
the other's workers. Real tmux (one private server shared by both), real git, the scripted agent."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.kit.fakes import make_repo
from tests.kit.harness import Workspace, in_terminal, prepare, remove_socket, wait_for

pytestmark = [pytest.mark.tmux, pytest.mark.e2e, pytest.mark.timeout(300)]


def task_text(name: str) -> str:
    return f"""Write this repository's name.

## Validation
- `grep -qx {name} name.txt`

```scripted
coder:
  say I am {name}
  wait
  write name.txt "{name}\\n"
  commit "name: {name}"
  report "done: wrote {name}"
reviewer:
  say reviewing {name}
  verdict approve
```
"""


def received(ws: Workspace, role: str = "coder") -> list[str]:
    out: list[str] = []
    for path in sorted((ws.root / ".orch" / "logs").glob(f"scripted-same-{role}-*.jsonl")):
        out += [json.loads(line)["text"] for line in path.read_text().splitlines()]
    return out


def windows(ws: Workspace) -> dict[str, str]:
    """window id -> workspace tag, of every window on the shared server."""
    out = ws.tmux("list-windows", "-a", "-F", "#{window_id} #{@orch_ws}")
    return dict(line.split(" ", 1) for line in out.splitlines() if line.strip())


def workspace_id(ws: Workspace) -> str:
    fields = dict(line.split(" ", 1) for line in (ws.root / ".orch" / "workspace").read_text().splitlines())
    return fields["id"]


def ids(ws: Workspace) -> set[str]:
    return {w["id"] for w in ws.task_status("same")["workers"]}


def test_two_workspaces_with_the_same_task_name_on_one_server(tmp_path: Path, socket_name: str,
                                                              base_env: dict[str, str]) -> None:
    a = prepare(make_repo(tmp_path / "alpha"), socket_name, base_env)
    b = prepare(make_repo(tmp_path / "beta"), socket_name, base_env)
    try:
        a.task("same", task_text("alpha"))
        b.task("same", task_text("beta"))
        assert "started: same" in a.orch("scan").out
        # B's first pass sees A's windows on the server: it neither reports them as orphans nor adopts them
        out = b.orch("scan").out
        assert "started: same" in out and "orphan" not in out and "re-registered" not in out
        for ws, me, other in ((a, "alpha", "beta"), (b, "beta", "alpha")):
            st = ws.status()
            assert st["orphans"] == [] and len(st["tasks"][0]["workers"]) == 1
            wait_for(lambda ws=ws, me=me: f"I am {me}" in ws.screen("same"), what=f"{me}'s coder to start")
            assert f"I am {other}" not in ws.screen("same")  # capture reads its own worker's pane
            pwd = ws.orch("exec", "same", "--", "pwd").out.strip()  # exec runs in its own worktree
            assert Path(pwd).resolve() == (ws.root / ".worktree" / "same").resolve()
        a_id, b_id = workspace_id(a), workspace_id(b)
        assert a_id != b_id
        assert sorted(windows(a).values()) == sorted([a_id, b_id])  # one window each, tagged with its workspace
        a_windows = {w for w, tag in windows(a).items() if tag == a_id}
        session_names = a.tmux("list-sessions", "-F", "#{session_name}").split()
        assert sorted(session_names) == ["task-same", "task-same@beta"]

        # attach shows A's own window
        outer = in_terminal([sys.executable, "-m", "orch", "attach", "same"], a.env, cwd=a.root)
        try:
            wait_for(lambda: a.tmux("list-clients", "-F", "#{window_id}").split() == sorted(a_windows),
                     what="the client to attach to A's window")
        finally:
            remove_socket(outer)

        # adoption after a lost database: A gets back its own worker, and only it
        before_a, before_b = ids(a), ids(b)
        for suffix in ("", "-wal", "-shm"):
            (a.root / ".orch" / f"orch.db{suffix}").unlink(missing_ok=True)
        out = a.orch("scan").out
        assert "re-registered from tmux: same" in out and out.count("same") == 1, out
        assert ids(a) == before_a and ids(b) == before_b

        # gc in B lists nothing of A's and removes nothing of A's
        assert b.orch("gc", "--yes").out.strip() == "nothing stale"
        assert set(windows(a)) >= a_windows

        # send types into its own agent only
        a.orch("send", "same", "go on, alpha")
        wait_for(lambda: "go on, alpha" in received(a), what="A's coder to receive the text")
        assert not any("alpha" in text for text in received(b))
        b.orch("send", "same", "go on, beta")
        wait_for(lambda: "go on, beta" in received(b), what="B's coder to receive the text")

        # both go through their review loops to ready, each on its own commit
        for ws, me in ((a, "alpha"), (b, "beta")):
            assert ws.run_until("same", ("ready", "blocked"), timeout=90)["state"] == "ready"
            dossier = json.loads((ws.root / ".orch" / "dossiers" / "same.json").read_text())
            head = ws.orch("exec", "same", "--", "git", "rev-parse", "HEAD").out.strip()
            assert dossier["sha"] == head and dossier["commits"][0]["subject"] == f"name: {me}"
            assert f"reviewing {me}" in ws.screen("same:reviewer")
        assert not any("beta" in text for text in received(a, "reviewer"))

        # close in B kills B's session only: A's coder and reviewer keep running
        a_before = ids(a)
        b.orch("close", "same", "--force")
        assert set(windows(a).values()) == {a_id}  # B's windows are gone, A's coder and reviewer are there
        st = a.task_status("same")
        assert {w["id"] for w in st["workers"]} == a_before
        assert all(w["state"] not in ("lost", "exited") for w in st["workers"])
        assert a.orch("capture", "same:reviewer").code == 0
        a.orch("close", "same", "--force")
        assert a.tmux("list-windows", "-a", check=False).strip() == ""
    finally:
        a.stop_daemons()
        b.stop_daemons()
