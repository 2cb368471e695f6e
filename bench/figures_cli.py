"""Figure 7, the commands a person types, as a person runs them (pip's console script), each next to
`python -c pass` (the floor), interleaved: `orch status` with 20 tasks (3 live workers), `orch scan` with nothing
to do, `orch capture`, `orch log -n 20`, and `orch send`'s own cost (to a worker's shell pane: the text typed, no
agent's confirmation to wait for). The goal is 4x the floor at most."""

from __future__ import annotations

import statistics
import sys

from common import ORCH, Space, spread, timed

GOAL = 4.0
HELD = "---\nhold: true\n---\na task kept queued for the bench\n"


def commands(space: Space, runs: int) -> list[tuple[str, str, str, str]]:
    live = ["live0", "live1", "live2"]
    for i in range(17):
        space.write_task(f"held{i:02d}", HELD)
    space.spawn(live, timeout=60)
    space.orch("exec", "live0", "--", "true")  # the worker's shell pane, for `orch send`
    said = space.orch("scan").strip()
    if any(not line.startswith("waiting: held") for line in said.splitlines()):  # held tasks are listed, no more
        raise RuntimeError(f"bench (cli): the scan was to have nothing to do, it said: {said[:200]}")
    env, cwd = space.env, str(space.repo)
    figures = {
        "`orch status` (20 tasks, 3 live workers)": [ORCH, "status"],
        "`orch scan` (nothing to do: 3 idle workers, 17 held tasks)": [ORCH, "scan"],
        "`orch capture live0`": [ORCH, "capture", "live0"],
        "`orch log -n 20`": [ORCH, "log", "-n", "20"],
        "`orch send` to a worker's shell pane (its own cost: no confirmation to wait for)":
            [ORCH, "send", "live0:coder.1", "# a note from the bench"],
        "`orch --help`": [ORCH, "--help"],
    }
    floor: list[float] = []
    times: dict[str, list[float]] = {k: [] for k in figures}
    for i in range(runs + 2):
        f = timed([sys.executable, "-c", "pass"], env, cwd)
        took = {k: timed(argv, env, cwd) for k, argv in figures.items()}
        if i >= 2:
            floor.append(f)
            for k, v in took.items():
                times[k].append(v)
    base = statistics.median(floor)
    rows = [("`python -c pass` (floor of this figure)", f"{base * 1000:.1f} ms", spread(floor), "1.00x")]
    for label, values in times.items():
        ratio = statistics.median(values) / base
        verdict = "within" if ratio <= GOAL else "over"
        rows.append((label, f"{statistics.median(values) * 1000:.1f} ms", spread(values),
                     f"{ratio:.2f}x floor ({verdict} the {GOAL:g}x goal)"))
    return rows
