"""Many hosts, end to end: a Temporal dev server, a bare repository as the remote, the workspace's daemon and
`orch host` processes on this machine (each its own HOME, tmux socket and clone), the scripted agent on them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.kit.cluster import HostProc, Server, TLSGate, bare_remote, configure, host_args, wait_ref
from tests.kit.harness import ASKS, Workspace, reviewed_task, wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.tmux, pytest.mark.e2e, pytest.mark.timeout(300)]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    s = Server(tmp_path / "temporal").start()
    yield s
    s.stop()


@pytest.fixture
def remote(ws: Workspace, tmp_path: Path) -> Path:
    return bare_remote(ws.root, tmp_path / "remote.git")


def commit_file(ws: Workspace, name: str, text: str) -> None:
    (ws.root / name).write_text(text)
    for args in (["add", name], ["commit", "-qm", f"add {name}"]):
        subprocess.run(["git", "-C", str(ws.root), *args], check=True, env=ws.env)


def host_state(h: HostProc, slug: str) -> str:
    from orch import taskfile

    path = h.clone / ".orch" / "tasks" / f"{slug}.md"
    return taskfile.read(str(path))[1].state if path.exists() else ""


@pytest.fixture
def hosts(tmp_path: Path, ws: Workspace) -> Iterator[list[HostProc]]:
    started: list[HostProc] = []
    yield started
    for h in started:
        h.stop()


def start_host(hosts: list[HostProc], tmp_path: Path, ws: Workspace, server: Server, remote: Path, name: str,
               *more: str) -> HostProc:
    h = HostProc(name, tmp_path / name, dict(ws.env), host_args(server, remote, *more))
    hosts.append(h)
    return h.start()


def statuses(ws: Workspace, slug: str) -> list[str]:
    path = ws.tasks / f"{slug}.md"
    if not path.exists():
        path = ws.tasks / "done" / f"{slug}.md"
    return ws.statuses(slug) if path.parent == ws.tasks else []


def test_tasks_spread_over_hosts_by_labels_and_places_and_finish_with_dossiers(
        ws: Workspace, server: Server, remote: Path, hosts: list[HostProc], tmp_path: Path) -> None:
    configure(ws.config_file, server)
    start_host(hosts, tmp_path, ws, server, remote, "h1", "--labels", "gpu", "--max-workers", "1")
    start_host(hosts, tmp_path, ws, server, remote, "h2", "--max-workers", "2")
    start_host(hosts, tmp_path, ws, server, remote, "h3", "--max-workers", "2")
    listed = json.loads(ws.orch("hosts", "--json").out)["hosts"]
    import orch

    assert all(h["speaks"] for h in listed)
    assert [(h["name"], h["live"], h["labels"], h["max_workers"], h["version"]) for h in listed] == [
        ("h1", True, ["gpu"], 1, orch.__version__), ("h2", True, [], 2, orch.__version__),
        ("h3", True, [], 2, orch.__version__)]

    ws.task("train", "---\nneeds: [gpu]\n---\n" + reviewed_task("Train the model.", ["verdict approve"]))
    for n in range(4):
        ws.task(f"t{n}", reviewed_task(f"Task {n}.", ["verdict approve"]))
    ws.daemon(tmp_path / "daemon.log").start()

    slugs = ["train", *(f"t{n}" for n in range(4))]

    def all_ready() -> dict | None:
        got = {t["slug"]: t for t in ws.status()["tasks"]}
        return got if all(got[s]["state"] == "ready" for s in slugs) else None

    got = wait_for(all_ready, 180, "every task ready on its host")
    assert isinstance(got, dict)
    placed = {s: got[s]["host"] for s in slugs}
    assert placed["train"] == "h1", placed
    # h1 (the only gpu host) is kept for the task that needs it: the others spread over h2 and h3
    assert {placed[s] for s in slugs if s != "train"} == {"h2", "h3"}, placed
    for s in slugs:
        host = next(h for h in hosts if h.name == placed[s])
        # the branch here, at the head its host pushed, with the coder's commit
        sha = wait_ref(remote, f"refs/orch/wip/{s}")
        assert subprocess.run(["git", "-C", str(ws.root), "rev-parse", f"orch/{s}"], capture_output=True, text=True,
                              check=True).stdout.strip() == sha
        assert subprocess.run(["git", "-C", str(ws.root), "show", f"orch/{s}:a.txt"], capture_output=True,
                              text=True, check=True).stdout == "1"
        # the dossier, written here from the host's
        dossier = json.loads((ws.root / ".orch" / "dossiers" / f"{s}.json").read_text())
        assert dossier["head"] == sha if "head" in dossier else True
        assert (ws.root / ".orch" / "dossiers" / f"{s}.md").exists()
        # the host's record, copied once: its status lines, each once, and nothing of the workspace's own written
        # by its hosts (the task file here is written only by the workspace)
        lines = ws.statuses(s)
        assert any(line.startswith(f"on {placed[s]}: ") for line in lines), lines
        mirrored = [line for line in lines if line.startswith("on ")]
        assert len(mirrored) == len(set(mirrored)), mirrored
        assert (host.clone / ".orch" / "tasks" / f"{s}.md").exists() or (
            host.clone / ".orch" / "tasks" / "done" / f"{s}.md").exists()
    listed = json.loads(ws.orch("hosts", "--json").out)["hosts"]
    assert all(h["live"] for h in listed)
    # closed: its copy on its host closed too, and its work in progress gone from the remote and from here
    ws.orch("close", "t0")
    host = next(h for h in hosts if h.name == placed["t0"])
    wait_for(lambda: (host.clone / ".orch" / "tasks" / "done" / "t0.md").exists(), 60, "t0 closed on its host")
    for repo in (remote, ws.root):
        assert subprocess.run(["git", "-C", str(repo), "rev-parse", "--verify", "-q", "refs/orch/wip/t0"],
                              capture_output=True, check=False).returncode == 1, repo
    assert subprocess.run(["git", "-C", str(remote), "rev-parse", "--verify", "-q", "refs/orch/wip/t1"],
                          capture_output=True, check=False).returncode == 0  # the others' are theirs


def test_send_capture_exec_and_reply_reach_a_worker_on_its_host(
        ws: Workspace, server: Server, remote: Path, hosts: list[HostProc], tmp_path: Path) -> None:
    configure(ws.config_file, server)
    h1 = start_host(hosts, tmp_path, ws, server, remote, "h1")
    ws.task("shed", ASKS)
    ws.daemon(tmp_path / "daemon.log").start()
    wait_for(lambda: ws.task_status("shed")["state"] == "needs-input", 90, "the question, reported from h1")
    assert ws.task_status("shed")["host"] == "h1"
    # by task name, from the workspace: the host's orch runs the command in its clone
    screen = ws.orch("capture", "shed", "-n", "30").out
    assert "which colour?" in screen, screen
    assert "which colour?" in ws.orch("capture", "shed", "--color").out
    # the dashboards' live screen of a worker on a host: read there, with its colours
    from orch.web.app import screen_of
    from orch.workspace import Workspace as OrchWorkspace

    assert "which colour?" in screen_of(OrchWorkspace(str(ws.root)), "shed")
    ran = ws.orch("exec", "shed", "--", "pwd")
    assert ran.out.strip() == str(h1.clone / ".worktree" / "shed"), ran
    failed = ws.orch("exec", "shed", "--", "sh", "-c", "exit 3", check=False)
    assert failed.code == 3, failed
    ws.orch("reply", "shed", "blue")
    wait_for(lambda: ws.task_status("shed")["state"] == "ready", 90, "shed ready after the answer")
    sent = ws.orch("send", "shed", "a note after the work")
    assert "sent" in sent.out and "shed" in sent.out, sent
    # the web board's action (the dashboards call the same workflow functions): routed to the host too
    from orch.web.app import ACTIONS
    from orch.workflow.context import Ctx

    ctx = Ctx(OrchWorkspace(str(ws.root)))
    try:
        said = ACTIONS["send"](ctx, "shed", {"text": "from the board"})
    finally:
        ctx.close()
    assert "sent" in said and "shed" in said, said

    def coder_heard() -> bool:
        logs = [p.read_text() for p in (h1.clone / ".orch" / "logs").glob("scripted-*.jsonl")]
        return any("blue" in text and "a note after the work" in text and "from the board" in text for text in logs)

    wait_for(coder_heard, 30, "the coder on h1 to receive the answer and the note")
    assert subprocess.run(["git", "-C", str(ws.root), "show", "orch/shed:shed.txt"], capture_output=True,
                          text=True, check=True).stdout == "painted\n"
    # attach: on another machine there is no window here to show; without --ssh the command to run there
    attached = ws.orch("attach", "shed", check=False)
    assert attached.code == 1 and f"orch -C {h1.clone} attach shed" in attached.err, attached
    # a task on no host is not routed: the same one-line errors as on one machine
    missing = ws.orch("capture", "nosuch", check=False)
    assert missing.code != 0 and missing.err.count("\n") == 1, missing


STEP = """\
# the first host: a.txt committed, then at work until the host dies; the host it goes to next finds a.txt
if [ -e a.txt ]; then exit 0; fi
echo 1 > a.txt && git add a.txt && git commit -qm a && sleep 600
"""
RESUMABLE = """\
Two steps, the first on a host that dies.

```scripted
coder:
  run sh step.sh
  write b.txt "2"
  commit "b"
  report "done: a and b"
reviewer:
  verdict approve
```
"""


def deep_on_h1(ws: Workspace, server: Server, hosts: list[HostProc], tmp_path: Path) -> tuple[Path, HostProc]:
    """A bare remote, host h1 and the workspace's daemon, with the task ``deep`` (RESUMABLE) handed to h1."""
    commit_file(ws, "step.sh", STEP)
    remote = bare_remote(ws.root, tmp_path / "remote.git")
    configure(ws.config_file, server)
    h1 = start_host(hosts, tmp_path, ws, server, remote, "h1")
    ws.task("deep", RESUMABLE)
    ws.daemon(tmp_path / "daemon.log").start()
    return remote, h1


def deep_a_pushed(remote: Path) -> str | None:
    """The work in progress of ``deep`` once it holds a.txt (its coder's commit on its first host: then it sleeps,
    and nothing more is pushed from there); None before."""
    sha = wait_ref(remote, "refs/orch/wip/deep")
    return sha if subprocess.run(["git", "-C", str(remote), "cat-file", "-e", f"{sha}:a.txt"],
                                 check=False).returncode == 0 else None


def test_a_host_killed_mid_task_its_task_finishes_on_another_from_its_pushed_work(
        ws: Workspace, server: Server, hosts: list[HostProc], tmp_path: Path) -> None:
    remote, h1 = deep_on_h1(ws, server, hosts, tmp_path)
    wait_for(lambda: deep_a_pushed(remote), 90, "h1 to push deep's first commit")
    assert ws.task_status("deep")["host"] == "h1"
    start_host(hosts, tmp_path, ws, server, remote, "h2")
    h1.kill()  # kill -9: the host, its daemon, its tmux server and the coder in it
    wait_for(lambda: ws.task_status("deep")["state"] == "ready", 120, "deep ready on h2")
    assert ws.task_status("deep")["host"] == "h2"
    tree = subprocess.run(["git", "-C", str(ws.root), "ls-tree", "--name-only", "orch/deep"], capture_output=True,
                          text=True, check=True).stdout.split()
    assert {"a.txt", "b.txt"} <= set(tree), tree
    log = subprocess.run(["git", "-C", str(ws.root), "log", "--format=%s", "main..orch/deep"], capture_output=True,
                         text=True, check=True).stdout.split("\n")
    assert log[:2] == ["b", "a"], log  # h1's commit, kept, and h2's on top of it
    lines = ws.statuses("deep")
    assert any("host h1 stopped heartbeating" in line for line in lines), lines
    assert "placed on host h2 again (its host was lost)" in lines, lines
    done = [line for line in lines if "done: a and b" in line]
    assert len(done) == 1, lines  # the coder's report, applied once
    mirrored = [line for line in lines if line.startswith("on ")]
    assert len(mirrored) == len(set(mirrored)), lines
    def h1_dead() -> dict | None:
        listed = {h["name"]: h for h in json.loads(ws.orch("hosts", "--json").out)["hosts"]}
        return listed if not listed["h1"]["live"] else None

    listed = wait_for(h1_dead, 30, "h1 shown dead in `orch hosts`")
    assert listed["h2"]["live"], listed  # type: ignore[index]


def test_a_host_cut_off_mid_task_closes_its_copy_when_it_comes_back(
        ws: Workspace, server: Server, hosts: list[HostProc], tmp_path: Path) -> None:
    """A partition, not a death: h1's `orch host` stops (SIGSTOP) while its daemon and its coder go on; the task is
    placed on h2 and finishes there. When h1 comes back, its run of the task is over (its heartbeat is refused):
    it closes its copy (the coder still at work there is ended) and pushes nothing over h2's work."""
    remote, h1 = deep_on_h1(ws, server, hosts, tmp_path)
    first = wait_ref(remote, "refs/orch/wip/deep", 90)
    start_host(hosts, tmp_path, ws, server, remote, "h2")
    assert h1.proc is not None
    os.kill(h1.proc.pid, signal.SIGSTOP)  # the host alone: its daemon, tmux server and coder go on
    try:
        wait_for(lambda: ws.task_status("deep")["state"] == "ready", 120, "deep ready on h2")
        assert ws.task_status("deep")["host"] == "h2"
        assert host_panes(h1, "deep"), "h1's coder goes on while its host is cut off"
        assert host_state(h1, "deep") not in ("", "done")
    finally:
        os.kill(h1.proc.pid, signal.SIGCONT)
    wait_for(lambda: not host_panes(h1, "deep") and (h1.clone / ".orch" / "tasks" / "done" / "deep.md").exists(), 60,
             "h1 to end its copy's workers and close it once it is back")
    log = subprocess.run(["git", "-C", str(ws.root), "log", "--format=%s", "main..orch/deep"], capture_output=True,
                         text=True, check=True).stdout.split("\n")
    assert log[:2] == ["b", "a"], log
    wip = wait_ref(remote, "refs/orch/wip/deep")
    assert wip != first and subprocess.run(["git", "-C", str(remote), "merge-base", "--is-ancestor", first, wip],
                                           check=False).returncode == 0  # h2's work, on h1's first commit
    assert ws.task_status("deep")["state"] == "ready"
    assert [h["name"] for h in json.loads(ws.orch("hosts", "--json").out)["hosts"] if h["live"]] == ["h1", "h2"]


def test_a_task_closed_while_it_runs_on_a_host_keeps_its_pushed_work_on_its_branch(
        ws: Workspace, server: Server, hosts: list[HostProc], tmp_path: Path) -> None:
    """Closed before it was ready (its branch not here yet): its run on the host ends and the host closes its copy;
    the commits it pushed are kept on its branch here (`branch orch/deep kept`) before its work in progress is
    deleted from the remote."""
    remote, h1 = deep_on_h1(ws, server, hosts, tmp_path)

    pushed = wait_for(lambda: deep_a_pushed(remote), 90, "h1 to push deep's commit")
    assert subprocess.run(["git", "-C", str(ws.root), "rev-parse", "--verify", "-q", "refs/heads/orch/deep"],
                          capture_output=True, check=False).returncode == 1  # not here yet
    closed = ws.orch("close", "deep", "--force")
    assert "its run on host h1 ends" in closed.out and "branch orch/deep kept" in closed.out, closed
    assert subprocess.run(["git", "-C", str(ws.root), "rev-parse", "orch/deep"], capture_output=True, text=True,
                          check=True).stdout.strip() == pushed
    for repo in (remote, ws.root):
        assert subprocess.run(["git", "-C", str(repo), "rev-parse", "--verify", "-q", "refs/orch/wip/deep"],
                              capture_output=True, check=False).returncode == 1, repo
    wait_for(lambda: not host_panes(h1, "deep") and (h1.clone / ".orch" / "tasks" / "done" / "deep.md").exists(), 60,
             "h1 to close its copy")


def test_a_host_started_again_closes_its_copies_of_tasks_that_went_on_elsewhere(
        ws: Workspace, server: Server, hosts: list[HostProc], tmp_path: Path) -> None:
    """A host stopped (SIGTERM) hands its task on and leaves its coder running; started again, it finds the task on
    another host and closes its own copy. A task closed while its host is away: the host closes its copy once it is
    back."""
    remote, h1 = deep_on_h1(ws, server, hosts, tmp_path)
    wait_ref(remote, "refs/orch/wip/deep", 90)
    h2 = start_host(hosts, tmp_path, ws, server, remote, "h2")
    h1.halt()
    wait_for(lambda: ws.task_status("deep")["state"] == "ready", 120, "deep ready on h2")
    assert ws.task_status("deep")["host"] == "h2"
    assert host_panes(h1, "deep"), "a stopped host leaves its workers"
    h1.start()
    wait_for(lambda: not host_panes(h1, "deep") and (h1.clone / ".orch" / "tasks" / "done" / "deep.md").exists(), 60,
             "h1, started again, to close its copy of deep")
    assert "closed this host's copy of deep" in h1.log.read_text()
    assert host_state(h2, "deep") == "ready" and host_panes(h2, "deep")  # the ready copy waits for the person
    # closed while its host is away: the host closes its copy once it is back
    h2.halt()
    closed = ws.orch("close", "deep")
    assert "host h2 does not answer now: it closes its copy of deep once it is back" in closed.out, closed
    assert host_panes(h2, "deep")
    h2.start()
    wait_for(lambda: (h2.clone / ".orch" / "tasks" / "done" / "deep.md").exists() and not host_panes(h2, "deep"), 60,
             "h2, back, to close its copy of deep")


def test_a_round_after_ready_goes_back_to_the_host_with_the_tasks_copy(
        ws: Workspace, server: Server, remote: Path, hosts: list[HostProc], tmp_path: Path) -> None:
    """Once ready, a task's copy waits on its host with its coder, as on one machine: `orch retry` has it validated
    and reviewed again there, and a round with a fix request (what a pull request's round or a failed train sends)
    goes to that coder; the workspace takes the branch again when it is ready. No worker starts in the workspace."""
    from orch.lifecycle import Actor, TaskEvent, TaskState
    from orch.locks import hold
    from orch.workflow import prompts, review
    from orch.workflow import tasks as T
    from orch.workflow.context import Ctx
    from orch.workspace import Workspace as OrchWorkspace

    configure(ws.config_file, server)
    h1 = start_host(hosts, tmp_path, ws, server, remote, "h1")
    ws.task("twice", reviewed_task("Two rounds on a host.", ["verdict approve"],
                                   more='coder round 3:\n  write c.txt "3"\n  commit "c"\n  report "done: c"\n'
                                        'reviewer round 2:\n  verdict approve\nreviewer round 3:\n  verdict approve\n'))
    ws.daemon(tmp_path / "daemon.log").start()
    wait_for(lambda: ws.task_status("twice")["state"] == "ready", 120, "twice ready on h1")
    said = ws.orch("retry", "twice").out
    assert "validating again (round 2) on its host" in said, said
    wait_for(lambda: ws.task_status("twice")["state"] == "ready"
             and "on h1: round 2 from the workspace: validating the branch again, then a new review" in
             ws.statuses("twice"), 120, "twice validated, reviewed and ready again on h1")
    ctx = Ctx(OrchWorkspace(str(ws.root)))
    try:
        with hold(ctx.lock_path("scan"), wait=60):  # (as a pass makes a pull request's round)
            T.move(ctx, "twice", TaskState.FIXING, TaskEvent.FORGE_ROUND, Actor.PASS, round="3",
                   status="the pull request's check `lint` failed")
            text = prompts.fix_prompt("twice", 3, ["the check `lint` failed: E501"], [], 5, prompts.orch_command(ctx),
                                      "the pull request")
            assert review.deliver_to_coder(ctx, T.get(ctx, "twice"), text, 3, ctx.panes()) == "sent to its host"
    finally:
        ctx.close()
    def ready_with_c() -> bool:
        return ws.task_status("twice")["state"] == "ready" and subprocess.run(
            ["git", "-C", str(ws.root), "show", "orch/twice:c.txt"], capture_output=True, text=True,
            check=False).stdout == "3"

    wait_for(ready_with_c, 120, "round 3's commit, reviewed on h1 and taken here")
    lines = ws.statuses("twice")
    assert "round 3 handed to host h1, where its copy waits" in lines, lines
    mirrored = [line[len("on h1: "):] for line in lines if line.startswith("on ")]
    host_lines = [line[23:] for line in (h1.clone / ".orch" / "tasks" / "twice.md").read_text()
                  .split("\n## Status\n", 1)[1].splitlines() if line.startswith("- ")]
    assert mirrored == host_lines  # every line of the host's copy, over its three runs, once and in order
    assert sum("done: c" in line for line in lines) == 1, lines
    heard = "".join(p.read_text() for p in (h1.clone / ".orch" / "logs").glob("scripted-*.jsonl"))
    assert "E501" in heard and str(h1.clone) in heard and str(ws.root / ".orch") not in heard  # its own orch
    assert not panes_of(ws.socket, "twice")  # no worker here


def panes_of(socket: str, slug: str) -> list[str]:
    """The tmux panes of a task's workers on the server at ``socket``."""
    done = subprocess.run(["tmux", "-L", socket, "list-panes", "-a", "-F", "#{session_name} #{pane_id}"],
                          capture_output=True, text=True, check=False)
    return [line for line in done.stdout.splitlines() if line.split(" ")[0] == f"task-{slug}"]


def host_panes(h: HostProc, slug: str) -> list[str]:
    """The host's tmux panes of a task's workers (in its session, ``task-<slug>``)."""
    return panes_of(h.socket, slug)


def test_the_workspace_daemon_killed_mid_run_loses_nothing(
        ws: Workspace, server: Server, remote: Path, hosts: list[HostProc], tmp_path: Path) -> None:
    configure(ws.config_file, server)
    h1 = start_host(hosts, tmp_path, ws, server, remote, "h1")
    ws.task("slow", reviewed_task("Slow.", ["verdict approve"]).replace('  write a.txt', '  sleep 2\n  write a.txt'))
    daemon = ws.daemon(tmp_path / "daemon.log").start()
    wait_for(lambda: ws.task_status("slow")["host"] == "h1", 60, "slow placed on h1")
    assert daemon.proc is not None
    daemon.proc.kill()  # kill -9
    daemon.proc.wait(10)
    # the host goes on without the workspace: the reports wait in the server
    wait_for(lambda: host_state(h1, "slow") == "ready", 90, "slow ready on h1 while the workspace's daemon is down")
    assert ws.task_status("slow")["state"] != "ready"
    ws.daemon(tmp_path / "daemon2.log").start()
    wait_for(lambda: ws.task_status("slow")["state"] == "ready", 120, "slow ready here once the daemon is back")
    lines = ws.statuses("slow")
    mirrored = [line for line in lines if line.startswith("on ")]
    assert len(mirrored) == len(set(mirrored)), lines
    host_lines = [line[23:] for line in (h1.clone / ".orch" / "tasks" / "slow.md").read_text()
                  .split("\n## Status\n", 1)[1].splitlines() if line.startswith("- ")]
    assert [line[len("on h1: "):] for line in mirrored] == host_lines  # every line of the host's, once, in order
    assert (ws.root / ".orch" / "dossiers" / "slow.md").exists()


def test_hosts_prove_who_they_are_with_mtls_and_a_wrong_credential_is_refused(
        ws: Workspace, server: Server, remote: Path, hosts: list[HostProc], tmp_path: Path) -> None:
    import trustme

    gate = TLSGate(server, tmp_path / "tls")
    try:
        ca = tmp_path / "tls" / "ca.pem"
        ws_cert, ws_key = gate.credentials("workspace")
        configure(ws.config_file, server, more=f'tls_ca = "{ca}"\ntls_cert = "{ws_cert}"\ntls_key = "{ws_key}"\n'
                                                'tls_server_name = "localhost"\n')
        text = ws.config_file.read_text().replace(server.address, gate.address)
        ws.config_file.write_text(text)
        cert, key = gate.credentials("h1")
        tls = ["--tls-ca", str(ca), "--tls-cert", str(cert), "--tls-key", str(key), "--tls-server-name", "localhost"]
        h1 = HostProc("h1", tmp_path / "h1", dict(ws.env),
                      ["--address", gate.address, "--remote", str(remote), "--beat", "0.5", *tls])
        hosts.append(h1)
        h1.start()
        # a host whose certificate another CA signed: refused, in one line, and never listed
        rogue_cert, rogue_key = gate.credentials("rogue", ca=trustme.CA())
        rogue = subprocess.run(
            [sys.executable, "-m", "orch", "host", "--name", "rogue", "--dir", str(tmp_path / "rogue"),
             "--address", gate.address, "--remote", str(remote), "--tls-ca", str(ca), "--tls-cert", str(rogue_cert),
             "--tls-key", str(rogue_key), "--tls-server-name", "localhost"],
            env={**ws.env, "HOME": str(tmp_path)}, capture_output=True, text=True, timeout=120, check=False)
        assert rogue.returncode == 1, rogue
        assert rogue.stderr.count("\n") == 1 and "refused the TLS handshake" in rogue.stderr, rogue.stderr
        # without any certificate: refused too
        bare = subprocess.run(
            [sys.executable, "-m", "orch", "host", "--name", "bare", "--dir", str(tmp_path / "bare"),
             "--address", gate.address, "--remote", str(remote), "--tls-ca", str(ca), "--tls-server-name", "localhost"],
            env={**ws.env, "HOME": str(tmp_path)}, capture_output=True, text=True, timeout=120, check=False)
        assert bare.returncode == 1 and bare.stderr.count("\n") == 1, bare
        listed = [h["name"] for h in json.loads(ws.orch("hosts", "--json").out)["hosts"]]
        assert listed == ["h1"], listed
        # and work goes through the gate
        ws.task("safe", reviewed_task("Behind mTLS.", ["verdict approve"]))
        ws.daemon(tmp_path / "daemon.log").start()
        wait_for(lambda: ws.task_status("safe")["state"] == "ready", 90, "safe ready through mTLS")
        assert ws.task_status("safe")["host"] == h1.name
    finally:
        gate.close()


def test_the_daemon_starts_before_its_cluster_server_and_hands_tasks_over_once_it_answers(
        ws: Workspace, tmp_path: Path, hosts: list[HostProc]) -> None:
    server = Server(tmp_path / "late-temporal")  # its port chosen, not started yet
    try:
        configure(ws.config_file, server)
        ws.config("scan_interval = 1")
        remote = bare_remote(ws.root, tmp_path / "remote.git")
        ws.task("late", reviewed_task("Late.", ["verdict approve"]))
        log = tmp_path / "daemon.log"
        ws.daemon(log).start()
        wait_for(lambda: "trying again every" in log.read_text(), 30, "the daemon to say the server does not answer")
        assert ws.task_status("late")["state"] == "queued"
        server.start()
        start_host(hosts, tmp_path, ws, server, remote, "h1")
        wait_for(lambda: "connected to the cluster's server" in log.read_text(), 60, "the daemon to connect")
        wait_for(lambda: ws.task_status("late")["state"] == "ready", 90, "late ready on h1")
        assert ws.task_status("late")["host"] == "h1"
    finally:
        ws.stop_daemons()
        server.stop()
