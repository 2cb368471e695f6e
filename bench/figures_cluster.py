"""Figure 11, many hosts: Temporal's dev server, a bare repository as the remote, H `orch host` processes on this
machine (each its own HOME, clone, tmux server and daemon: simulated hosts), and the workspace's `orch run`.
  (a) dispatch: H x N tasks written at once (each coder waits for a message: it stays alive), from the daemon's
      start to every task reported `coding` on a host, and how they spread;
  (b) a host's death: `kill -9` of one host, its daemon and its tmux server; from the kill to every one of its tasks
      reported `coding` on another host again (the heartbeat timeout is part of it, and said).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from common import ROOT, BenchError

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

WAITING = "a coder that waits (the bench)\n\n```scripted\ncoder:\n  wait\n```\n"
HEARTBEAT = 5.0


def _status(repo: Path, env: dict[str, str]) -> dict[str, dict]:
    done = subprocess.run([sys.executable, "-m", "orch", "status", "--json"], cwd=repo, env=env, capture_output=True,
                          text=True, check=False, timeout=60)
    if done.returncode != 0:
        raise BenchError(f"bench (cluster): orch status failed: {done.stderr.strip()}")
    return {t["slug"]: t for t in json.loads(done.stdout)["tasks"]}


def _until(check, timeout: float, what: str) -> float:  # noqa: ANN001 - a callable
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        if check():
            return time.perf_counter() - start
        time.sleep(0.2)
    raise BenchError(f"bench (cluster): {what} did not happen within {timeout:.0f} s")


def cluster(tmp: Path, hosts: int, per_host: int, timeout: float = 300) -> list[tuple[str, str, str, str]]:
    from orch import git
    from tests.kit.cluster import HostProc, Server, bare_remote, configure
    from tests.kit.harness import Daemon, Workspace

    env = {k: v for k, v in os.environ.items() if not k.startswith(("ORCH_", "TMUX"))}
    env.update(GIT_AUTHOR_NAME="bench", GIT_COMMITTER_NAME="bench", GIT_AUTHOR_EMAIL="bench@example.invalid",
               GIT_COMMITTER_EMAIL="bench@example.invalid", ORCH_TMUX_SOCKET=f"orch-bench-ws-{os.getpid()}")
    repo = tmp / "cluster-repo"
    git.init_repo(str(repo), [("README.md", "# cluster bench\n")])
    ws = Workspace(repo, env["ORCH_TMUX_SOCKET"], env)
    ws.orch("init")
    ws.config('default_agent = "scripted"\nidle_reminder = false')
    server = Server(tmp / "temporal").start()
    started: list[HostProc] = []
    daemon = None
    try:
        remote = bare_remote(repo, tmp / "cluster-remote.git")
        configure(ws.config_file, server, heartbeat=HEARTBEAT)
        places = per_host + -(-per_host // max(hosts - 1, 1))  # room for a dead host's tasks on the others
        for i in range(hosts):
            h = HostProc(f"h{i + 1}", tmp / f"host{i + 1}", dict(env),
                         ["--address", server.address, "--remote", str(remote), "--beat", "1",
                          "--max-workers", str(places)])
            started.append(h)
            h.start()
        slugs = [f"t{i:02d}" for i in range(hosts * per_host)]
        for slug in slugs:
            ws.task(slug, WAITING)
        daemon = Daemon(ws, tmp / "cluster-daemon.log")
        t0 = time.perf_counter()
        daemon.start()
        seen: dict[str, dict] = {}

        def all_coding() -> bool:
            seen.update(_status(repo, env))
            return all(seen[s]["state"] == "coding" and seen[s]["host"] for s in slugs)

        _until(all_coding, timeout, f"{len(slugs)} tasks coding on the hosts")
        dispatch = time.perf_counter() - t0
        spread = Counter(seen[s]["host"] for s in slugs)
        victim = started[0]
        theirs = [s for s in slugs if seen[s]["host"] == victim.name]
        t1 = time.perf_counter()
        victim.kill()

        def moved() -> bool:
            now = _status(repo, env)
            return all(now[s]["state"] == "coding" and now[s]["host"] not in ("", victim.name) for s in theirs)

        _until(moved, timeout, f"the {len(theirs)} tasks of {victim.name} coding elsewhere")
        failover = time.perf_counter() - t1
    finally:
        if daemon is not None:
            daemon.stop(kill=True)
        for h in started:
            h.stop()
        server.stop()
        subprocess.run(["tmux", "-L", env["ORCH_TMUX_SOCKET"], "kill-server"], capture_output=True, check=False)
    shown = ", ".join(f"{name} {n}" for name, n in sorted(spread.items()))
    return [
        (f"{hosts} hosts x {per_host} workers: {len(slugs)} task files to every coder started on a host",
         f"{dispatch:.1f} s", "—", f"from the workspace daemon's start; spread {shown}"),
        (f"a host killed (-9) with {len(theirs)} tasks: to all of them coding on the other hosts again",
         f"{failover:.1f} s", "—", f"of which up to {HEARTBEAT:g} s is the heartbeat timeout ([cluster] heartbeat)"),
    ]
