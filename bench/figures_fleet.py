"""Figure 2, reconcile cost as the fleet grows: with N live scripted workers (idle, waiting for messages),
  (a) `orch scan` as a command: wall time, and the tmux and git processes it starts (PATH shim);
  (b) the same pass in this process, `orch.workflow.scan.scan(ctx)` (no interpreter start-up), same shim;
  (c) for comparison only, a naive pass written here: one `tmux display-message` and one `tmux capture-pane` per
      worker of the registry, which is what reading each worker separately would cost.
"""

from __future__ import annotations

import statistics
import subprocess
import time

from common import ORCH, Shims, Space, environ, spread, timed

REPEAT = 5
NAIVE_REPEAT = 3  # it takes seconds at 100 workers


def _naive_pass(space: Space, tmux: str) -> None:
    """Ask tmux about each registered worker separately (the registry read from orch.db)."""
    with space.db() as db:
        panes = [row[0] for row in db.execute(
            "SELECT pane_id FROM workers WHERE ended_at IS NULL AND state NOT IN ('lost', 'exited', 'closed')")]
    for pane in panes:
        for args in (["display-message", "-p", "-t", pane, "#{pane_dead} #{pane_pid}"],
                     ["capture-pane", "-p", "-t", pane]):
            subprocess.run([tmux, "-L", space.socket, *args], capture_output=True, check=True)


def fleet(space: Space, shims: Shims, sizes: list[int], spawn_timeout: float) -> list[tuple[str, str, str, str]]:
    from orch.workflow.context import Ctx
    from orch.workflow.scan import scan
    from orch.workspace import find

    cli_rows, inproc_rows, naive_rows, spawn_notes = [], [], [], []
    have = 0
    env = {**space.env, "PATH": shims.path("count", space.env["PATH"])}
    for n in sizes:
        started = time.perf_counter()
        if n > have:
            space.spawn([f"w{i:03d}" for i in range(have, n)], spawn_timeout)
        have = max(have, n)
        live = len([w for w in space.workers() if w["state"] in ("idle", "working")])
        spawn_notes.append(f"{n}: {time.perf_counter() - started:.0f} s")
        if live != n:
            raise SystemExit(f"bench: expected {n} live workers, orch status shows {live}")
        timed([ORCH, "scan"], env, str(space.repo))  # warm-up

        # (a) the command
        walls, tmux_n, git_n = [], [], []
        for _ in range(REPEAT):
            shims.reset()
            walls.append(timed([ORCH, "scan"], env, str(space.repo)))
            t, g = shims.counted()
            tmux_n.append(t)
            git_n.append(g)
        cli_rows.append((f"`orch scan`, {n} live worker(s)", f"{statistics.median(walls) * 1000:.0f} ms", spread(walls),
                         f"{statistics.median(tmux_n):.0f} tmux, {statistics.median(git_n):.0f} git processes"))

        # (b) the pass in this process
        with environ(PATH=env["PATH"], ORCH_TMUX_SOCKET=space.socket):
            ctx = Ctx(find(explicit=str(space.repo)))
            try:
                scan(ctx)  # warm-up: imports, the database connection
                walls, tmux_n, git_n = [], [], []
                for _ in range(REPEAT):
                    shims.reset()
                    start = time.perf_counter()
                    report = scan(ctx)
                    walls.append(time.perf_counter() - start)
                    t, g = shims.counted()
                    tmux_n.append(t)
                    git_n.append(g)
                    if report.errors or report.spawned or report.lost:
                        raise SystemExit(f"bench: the in-process scan did something unexpected: {report.lines()}")
            finally:
                ctx.close()
        inproc_rows.append((f"in-process `scan(ctx)`, {n} live worker(s)", f"{statistics.median(walls) * 1000:.1f} ms",
                            spread(walls), f"{statistics.median(tmux_n):.0f} tmux, {statistics.median(git_n):.0f} git processes"))

        # (c) naive: one tmux process per question per worker
        tmux = str(shims.count_dir / "tmux")
        walls, tmux_n = [], []
        for _ in range(NAIVE_REPEAT):
            shims.reset()
            start = time.perf_counter()
            _naive_pass(space, tmux)
            walls.append(time.perf_counter() - start)
            tmux_n.append(shims.counted()[0])
        naive_rows.append((f"naive pass (bench only: 2 tmux calls per worker), {n} worker(s)",
                           f"{statistics.median(walls) * 1000:.0f} ms", spread(walls),
                           f"{statistics.median(tmux_n):.0f} tmux processes"))
    print(f"fleet: workers spawned and ready (cumulative count: seconds): {', '.join(spawn_notes)}", flush=True)
    return cli_rows + inproc_rows + naive_rows
