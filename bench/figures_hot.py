"""Figure 1, the hot path: `orch -` and `orch hook Stop` next to `python -c pass` (the floor), interleaved; then
`orch -` again while a daemon runs (it does not fork an applier then), interleaved with the floor of that phase."""

from __future__ import annotations

import json
import statistics
import sys
import time

from common import NEVER_STARTED, ORCH, Space, quiet, spread, timed

# what Claude Code's Stop hook sends on stdin (keys as observed from Claude Code 2.1.328)
STOP_PAYLOAD = json.dumps({
    "session_id": "11111111-2222-4333-8444-555555555555",
    "transcript_path": "/home/me/.claude/projects/-src-proj/11111111-2222-4333-8444-555555555555.jsonl",
    "cwd": "/src/proj/.worktree/task", "prompt_id": "2f5ed3e1-0000-4000-8000-000000000000",
    "permission_mode": "bypassPermissions", "effort": {"level": "medium"}, "hook_event_name": "Stop",
    "stop_hook_active": False, "last_assistant_message": "All done. " * 40, "background_tasks": [],
    "session_crons": [],
}).encode()

WARMUP = 3


def hot_path(space: Space, runs: int) -> list[tuple[str, str, str, str]]:
    space.write_task("hot", NEVER_STARTED + "a task to write messages to\n")
    env = {**space.env, "ORCH_WORKSPACE": str(space.repo), "ORCH_TASK": "hot", "ORCH_WORKER_TOKEN": "bench"}
    cwd = str(space.repo)
    worker_orch = str(space.repo / ".orch" / "bin" / "orch")  # what workers and hooks run (first on their PATH)
    inbox = space.repo / ".orch" / "inbox" / "new"

    def settle(daemon: int | None = None) -> None:
        """Let whatever a call started (the detached applier, or the daemon's pass) finish before the next sample
        (an agent reports every few seconds, not back to back; throughput under load is measured separately)."""
        deadline = time.monotonic() + 10
        while any(inbox.iterdir()) and time.monotonic() < deadline:
            time.sleep(0.01)
        if daemon is not None:
            quiet(daemon)
        time.sleep(0.05)

    floor, hot, console, hook = [], [], [], []
    for i in range(runs + WARMUP):
        f = timed([sys.executable, "-c", "pass"], env, cwd)
        h = timed([worker_orch, "-", f"progress note {i}"], env, cwd)
        settle()
        c = timed([ORCH, "-", f"console note {i}"], env, cwd)
        settle()
        k = timed([worker_orch, "hook", "Stop"], env, cwd, input=STOP_PAYLOAD)
        settle()
        if i >= WARMUP:
            floor.append(f)
            hot.append(h)
            console.append(c)
            hook.append(k)

    # the same call while `orch run` runs: the daemon applies the message, `orch -` forks nothing
    daemon = space.start_daemon()
    try:
        quiet(daemon, window=0.3, limit=15)
        floor2, hot2 = [], []
        for i in range(runs + WARMUP):
            f = timed([sys.executable, "-c", "pass"], env, cwd)
            h = timed([worker_orch, "-", f"progress note with the daemon {i}"], env, cwd)
            settle(daemon)
            if i >= WARMUP:
                floor2.append(f)
                hot2.append(h)
    finally:
        space.stop_daemon()

    rows = []
    base = statistics.median(floor)
    rows.append(("`python -c pass` (floor)", f"{base * 1000:.1f} ms", spread(floor), "1.00x"))
    for label, values, ref in (
        ("`orch -` from a worker (.orch/bin/orch)", hot, base),
        ("`orch hook Stop` (Claude Code payload)", hook, base),
        ("`orch -` through pip's console script", console, base),
        ("`orch -` from a worker, `orch run` daemon running (no applier forked)", hot2, statistics.median(floor2)),
    ):
        ratio = statistics.median(values) / ref
        rows.append((label, f"{statistics.median(values) * 1000:.1f} ms", spread(values), f"{ratio:.2f}x floor"))
    rows[-1] = (*rows[-1][:3], rows[-1][3] + f" (floor of that phase: {statistics.median(floor2) * 1000:.1f} ms)")
    return rows
