"""`make bench`: orch's own cost, each figure measured in the same run as its reference (floor).

Prints a markdown table and writes it to bench/results.md. Figures:
  1. hot path: median wall time of `orch -` (a worker's message) and of `orch hook Stop` (a realistic Claude Code
     payload) next to `python -c pass` (the floor), interleaved
  2. reconcile: tmux and git processes started by one `orch scan` with 1 and 30 live workers (a PATH shim counts
     them), and the scan's wall time
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
VENV_BIN = Path(sys.executable).parent
ORCH = str(VENV_BIN / "orch")


def timed(argv: list[str], env: dict[str, str], cwd: str, input: bytes | None = None) -> float:
    start = time.perf_counter()
    if input is None:
        subprocess.run(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, check=True)
    else:
        subprocess.run(argv, env=env, cwd=cwd, input=input, stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


# what Claude Code's Stop hook sends on stdin (keys as observed from Claude Code 2.1.328)
STOP_PAYLOAD = json.dumps({
    "session_id": "11111111-2222-4333-8444-555555555555",
    "transcript_path": "/home/me/.claude/projects/-src-proj/11111111-2222-4333-8444-555555555555.jsonl",
    "cwd": "/src/proj/.worktree/task", "prompt_id": "2f5ed3e1-0000-4000-8000-000000000000",
    "permission_mode": "bypassPermissions", "effort": {"level": "medium"}, "hook_event_name": "Stop",
    "stop_hook_active": False, "last_assistant_message": "All done. " * 40, "background_tasks": [],
    "session_crons": [],
}).encode()


def spread(values: list[float]) -> str:
    q = statistics.quantiles(values, n=4)
    return f"{q[0] * 1000:.1f}–{q[2] * 1000:.1f}"


class Bench:
    def __init__(self, keep: bool) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="orch-bench-"))
        self.keep = keep
        self.repo = self.tmp / "repo"
        self.socket = f"orch-bench-{os.getpid()}"
        self.counts = self.tmp / "counts"
        self.shim = self.tmp / "shim"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("ORCH_", "TMUX"))}
        self.env.update(ORCH_TMUX_SOCKET=self.socket, GIT_AUTHOR_NAME="b", GIT_COMMITTER_NAME="b")
        self.env.update(GIT_AUTHOR_EMAIL="b@example.invalid", GIT_COMMITTER_EMAIL="b@example.invalid")
        self.rows: list[tuple[str, str, str, str]] = []

    def orch(self, *args: str, env: dict[str, str] | None = None) -> str:
        proc = subprocess.run(
            [ORCH, *args], cwd=self.repo, env=env or self.env, capture_output=True, text=True, check=False
        )
        if proc.returncode != 0:
            raise SystemExit(f"bench: orch {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc.stdout

    def setup(self) -> None:
        self.repo.mkdir()
        for argv in (["git", "init", "-q", "-b", "main"], ["git", "commit", "-q", "--allow-empty", "-m", "start"]):
            subprocess.run(argv, cwd=self.repo, env=self.env, check=True)
        self.orch("init")
        cfg = self.repo / ".orch" / "config.toml"
        cfg.write_text('default_agent = "scripted"\n' + cfg.read_text())
        # PATH shim: count every tmux and git process orch starts
        self.shim.mkdir()
        for tool in ("tmux", "git"):
            real = shutil.which(tool)
            script = self.shim / tool
            script.write_text(f'#!/bin/sh\necho {tool} >> "{self.counts}"\nexec {real} "$@"\n')
            script.chmod(0o755)

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, check=False)
        if not self.keep:
            shutil.rmtree(self.tmp, ignore_errors=True)

    # -- 1: hot path -------------------------------------------------------------------------------------------

    def hot_path(self, runs: int) -> None:
        (self.repo / ".orch" / "tasks" / "hot.md").write_text("a task to write messages to\n")
        env = {**self.env, "ORCH_WORKSPACE": str(self.repo), "ORCH_TASK": "hot", "ORCH_WORKER_TOKEN": "bench"}
        cwd = str(self.repo)
        worker_orch = str(self.repo / ".orch" / "bin" / "orch")  # what workers and hooks run (first on their PATH)
        floor, hot, console, hook = [], [], [], []
        inbox = self.repo / ".orch" / "inbox" / "new"

        def settle() -> None:
            """Let the detached applier a call started finish before the next sample (an agent reports every few
            seconds, not back to back; throughput under load is measured separately)."""
            deadline = time.monotonic() + 10
            while any(inbox.iterdir()) and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(0.05)

        for i in range(runs + 3):
            f = timed([sys.executable, "-c", "pass"], env, cwd)
            h = timed([worker_orch, "-", f"progress note {i}"], env, cwd)
            settle()
            c = timed([ORCH, "-", f"console note {i}"], env, cwd)
            settle()
            k = timed([worker_orch, "hook", "Stop"], env, cwd, input=STOP_PAYLOAD)
            settle()
            if i >= 3:  # warm-up
                floor.append(f)
                hot.append(h)
                console.append(c)
                hook.append(k)
        base = statistics.median(floor)
        self.rows.append(("`python -c pass` (floor)", f"{base * 1000:.1f} ms", spread(floor), "1.00x"))
        for label, values in (
            ("`orch -` from a worker (.orch/bin/orch)", hot),
            ("`orch hook Stop` (Claude Code payload)", hook),
            ("`orch -` through pip's console script", console),
        ):
            ratio = statistics.median(values) / base
            self.rows.append((label, f"{statistics.median(values) * 1000:.1f} ms", spread(values), f"{ratio:.2f}x floor"))

    # -- 2: reconcile ------------------------------------------------------------------------------------------

    def scan_counts(self, fleet: list[int]) -> None:
        have = 0
        for n in fleet:
            for i in range(have, n):
                (self.repo / ".orch" / "tasks" / f"w{i:03d}.md").write_text("idle worker\n\n```scripted\nwait\n```\n")
            self.orch("scan")  # spawns the new workers (not measured)
            have = n
            env = {**self.env, "PATH": f"{self.shim}{os.pathsep}{self.env['PATH']}"}
            walls, tmux_counts, git_counts = [], [], []
            for _ in range(5):
                self.counts.unlink(missing_ok=True)
                walls.append(timed([ORCH, "scan"], env, str(self.repo)))
                lines = self.counts.read_text().split() if self.counts.exists() else []
                tmux_counts.append(lines.count("tmux"))
                git_counts.append(lines.count("git"))
            self.rows.append(
                (
                    f"`orch scan`, {n} live worker(s)",
                    f"{statistics.median(walls) * 1000:.0f} ms",
                    spread(walls),
                    f"{statistics.median(tmux_counts):.0f} tmux, {statistics.median(git_counts):.0f} git processes",
                )
            )

    def table(self) -> str:
        head = [
            f"orch bench, {time.strftime('%Y-%m-%d')}, {platform.machine()}, {os.cpu_count()} cores, "
            f"Python {platform.python_version()}",
            "",
            "| figure | median | spread (q1–q3, ms) | note |",
            "| --- | --- | --- | --- |",
        ]
        return "\n".join(head + [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in self.rows]) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=40, help="hot path repetitions")
    parser.add_argument("--fleet", default="1,30", help="live worker counts for the scan figure")
    parser.add_argument("--keep", action="store_true", help="keep the temporary repository")
    parser.add_argument("--out", default=str(HERE / "results.md"))
    args = parser.parse_args()
    bench = Bench(args.keep)
    try:
        bench.setup()
        bench.hot_path(args.runs)
        bench.scan_counts([int(x) for x in args.fleet.split(",")])
    finally:
        bench.close()
    text = bench.table()
    print(text)
    Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
