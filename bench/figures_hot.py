"""Figure 1, the hot path: `orch -` and `orch hook Stop` next to `python -c pass` (the floor), interleaved; then
`orch -` again while a daemon runs (it does not fork an applier then), interleaved with the floor of that phase; then,
where bubblewrap works, `orch -` from inside a worker's sandbox (it writes the worker's spool and nothing else)
next to `python -c pass` in the same sandbox, and the sandbox's own cost (bwrap around `python -c pass`)."""

from __future__ import annotations

import json
import os
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
    return rows + sandboxed(space, runs, env, worker_orch)


def sandboxed(space: Space, runs: int, env: dict[str, str], worker_orch: str) -> list[tuple[str, str, str, str]]:
    """`orch -` as a sandboxed worker runs it (ORCH_SPOOL set, inside bubblewrap), against `python -c pass` inside
    the same sandbox (each sample pays bwrap's start, so the two are compared there) and outside it."""
    from orch import sandbox
    from orch.workflow.sandboxing import _programs

    if sandbox.check() is not None:
        return [("`orch -` from a sandboxed worker", "—", "—", f"not measured: {sandbox.check()}")]
    bwrap = sandbox.find() or "bwrap"
    repo, state = str(space.repo), str(space.repo / ".orch")
    spool = space.repo / ".orch" / "spool" / "hot~coder~bench"
    (spool / "new").mkdir(parents=True, exist_ok=True)
    (spool / "tmp").mkdir(parents=True, exist_ok=True)
    plan = sandbox.Plan(chdir=repo, write=(str(spool),), show=(os.path.join(state, "bin"),),
                        hide=(state, sandbox.tmux_sockets()),
                        keep=_programs(repo, os.path.expanduser("~"), env.get("PATH", ""), [sys.executable]))
    inner = {**{k: v for k, v in env.items() if k != "ORCH_WORKER_TOKEN"}, "ORCH_SPOOL": str(spool)}
    floor, boxed_floor, boxed = [], [], []
    for i in range(runs + WARMUP):
        f = timed([sys.executable, "-c", "pass"], env, repo)
        bf = timed(sandbox.wrap(plan, [sys.executable, "-c", "pass"], bwrap), inner, repo)
        b = timed(sandbox.wrap(plan, [worker_orch, "-", f"sandboxed note {i}"], bwrap), inner, repo)
        if i >= WARMUP:
            floor.append(f)
            boxed_floor.append(bf)
            boxed.append(b)
    written = len(list((spool / "new").iterdir()))
    if written != runs + WARMUP:
        raise RuntimeError(f"bench (hot): {written} of {runs + WARMUP} sandboxed messages reached the spool")
    base, inside = statistics.median(floor), statistics.median(boxed_floor)
    return [
        ("`python -c pass` in a worker's sandbox (bwrap's start included)", f"{inside * 1000:.1f} ms",
         spread(boxed_floor), f"{inside / base:.2f}x the floor outside: the sandbox's own cost per process start"),
        ("`orch -` from a sandboxed worker (writes its spool)", f"{statistics.median(boxed) * 1000:.1f} ms",
         spread(boxed), f"{statistics.median(boxed) / inside:.2f}x the floor in the same sandbox; all "
                        f"{written} messages in the spool"),
    ]
