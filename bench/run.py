"""`make bench`: orch's own cost, each figure measured in the same run as its reference.

Prints a markdown table and writes it to bench/results.md (a full default run only, unless --out is given). Each
figure runs in a workspace of its own (a git repository with orch, the scripted agent, and a private tmux server);
reminders to idle coders are off (they would be typed in the middle of a measurement). Figures:
  1. hot path: median wall time of `orch -` (a worker's message) and of `orch hook Stop` (a realistic Claude Code
     payload) next to `python -c pass` (the floor), interleaved; then `orch -` while `orch run` runs, interleaved
     with the floor again (figures_hot.py)
  2. reconcile as the fleet grows (1, 10, 50, 100, 200 live scripted workers): `orch scan`'s wall time and the tmux and
     git processes it starts (a PATH shim counts them), the same pass in this process, and a naive per-worker pass
     written here for comparison (figures_fleet.py)
  3. spawn: task file to prompt confirmed, for 1 task and 20 at once, with the share of `git worktree add` (a
     timing PATH shim logs each git and tmux call); 1 task again with the sandbox off, for its cost (figures_spawn.py)
  4. inbox: 32 concurrent writers x 300 messages while `orch run` applies them: written/s, applied/s, lost,
     duplicated (figures_inbox.py)
  5. prompt delivery fidelity: 300 awkward texts (1 B to 50 KB) through `orch send`, with `orch run` running,
     compared byte for byte with what the scripted agent received; first 10 without a daemon for comparison
     (figures_delivery.py)
  6. `orch run` at rest with 20 idle workers: CPU per minute and peak memory, watched in the background while
     figure 5 runs in another workspace (figures_daemon.py)
  7. the commands a person types (status with 20 tasks, scan with nothing to do, capture, log -n 20, send's own
     cost, --help) through pip's console script, next to the floor, interleaved (figures_cli.py)
  9. the conflict radar at 20 and 50 open branches: the first pass, one branch moved (computed vs cached), nothing
     moved (figures_radar.py)
  10. the dashboards with 50 tasks and the daemon running: `orch web` and `orch dash`, from a change to the screen,
     CPU at rest and memory (figures_dash.py)
  8. pull requests: `orch scan` with 20 live tasks, each with a PR on the scripted forge (the real `gh`), the forge
     asked, next to the same pass with the forge not due; requests per pass (figures_forge.py)
  11. many hosts: Temporal's dev server and 3 `orch host` processes x 20 waiting coders: the dispatch of 60 tasks,
     and from one host's kill -9 to its tasks' coders started on the others (figures_cluster.py)
The whole run takes about 10 minutes on 2 cores; --quick about 4.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

from common import HERE, Shims, Space

FIGURES = ("1", "7", "8", "9", "10", "2", "3", "4", "5", "6", "11")


class Bench:
    def __init__(self, keep: bool) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="orch-bench-"))
        self.keep = keep
        self.shims = Shims(self.tmp)
        self.spaces: list[Space] = []
        self.rows: dict[str, list[tuple[str, str, str, str]]] = {}
        self.notes: list[str] = []

    def space(self, name: str) -> Space:
        space = Space(self.tmp, name)
        self.spaces.append(space)
        space.setup()
        return space

    def close(self) -> None:
        for space in self.spaces:
            space.close()
        if not self.keep:
            shutil.rmtree(self.tmp, ignore_errors=True)
        else:
            print(f"bench: kept {self.tmp}", file=sys.stderr)

    def table(self) -> str:
        head = [
            f"orch bench, {time.strftime('%Y-%m-%d')}, {platform.machine()}, {os.cpu_count()} cores, "
            f"Python {platform.python_version()}",
            "",
            "| figure | median | spread (q1–q3, ms) | note |",
            "| --- | --- | --- | --- |",
        ]
        rows = [row for fig in FIGURES for row in self.rows.get(fig, [])]
        return "\n".join(head + [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]) + "\n"


def phase(name: str) -> float:
    print(f"bench: {name}", file=sys.stderr, flush=True)
    return time.perf_counter()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="a scaled-down run (about a minute): fewer repetitions, workers, messages and texts")
    parser.add_argument("--runs", type=int, help="hot path repetitions (default 25; quick 10)")
    parser.add_argument("--fleet", help="live worker counts for the reconcile figure (default 1,10,50,100,200; quick 1,10)")
    parser.add_argument("--spawn", help="task counts started at once for the spawn figure (default 1,20; quick 1,5)")
    parser.add_argument("--spawn-reps", help="repetitions of each spawn count (default 3,2; quick 2,2)")
    parser.add_argument("--writers", type=int, help="concurrent inbox writers (default 32; quick 8)")
    parser.add_argument("--messages", type=int, help="messages per inbox writer (default 300; quick 50)")
    parser.add_argument("--texts", type=int, help="texts sent for the delivery figure (default 300; quick 40)")
    parser.add_argument("--compare-texts", type=int,
                        help="texts sent first without a daemon, for comparison (default 10; quick 5; 0: none)")
    parser.add_argument("--rest", type=float, help="seconds the idle daemon is watched (default 60; quick 10)")
    parser.add_argument("--hosts", help="simulated hosts x workers each for the cluster figure (default 3x20; quick 2x5)")
    parser.add_argument("--only", default=",".join(FIGURES), help="figures to run, e.g. 1,4 (default: all)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary repositories")
    parser.add_argument("--out", help="where to write the table (default bench/results.md, on a full default run)")
    args = parser.parse_args()
    q = args.quick
    runs = args.runs or (10 if q else 25)
    fleet = [int(x) for x in (args.fleet or ("1,10" if q else "1,10,50,100,200")).split(",")]
    n_hosts, per_host = (int(x) for x in (args.hosts or ("2x5" if q else "3x20")).split("x"))
    spawn_counts = [int(x) for x in (args.spawn or ("1,5" if q else "1,20")).split(",")]
    spawn_reps = [int(x) for x in (args.spawn_reps or ("2,2" if q else "3,2")).split(",")]
    spawn_reps += [spawn_reps[-1]] * (len(spawn_counts) - len(spawn_reps))
    writers = args.writers or (8 if q else 32)
    messages = args.messages or (50 if q else 300)
    texts = args.texts or (40 if q else 300)
    compare = args.compare_texts if args.compare_texts is not None else (5 if q else 10)
    rest = args.rest or (10.0 if q else 60.0)
    only = set(args.only.split(","))
    out = args.out
    if out is None and only == set(FIGURES) and not any(
            (q, args.runs, args.fleet, args.spawn, args.spawn_reps, args.writers, args.messages, args.texts, args.rest,
             args.compare_texts is not None, args.hosts)):
        out = str(HERE / "results.md")

    import figures_cli
    import figures_cluster
    import figures_daemon
    import figures_dash
    import figures_delivery
    import figures_fleet
    import figures_forge
    import figures_hot
    import figures_inbox
    import figures_radar
    import figures_spawn

    began = time.perf_counter()
    timings = []
    bench = Bench(args.keep)
    try:
        bench.shims.create()
        if "1" in only:
            t = phase(f"1. hot path, {runs} runs")
            bench.rows["1"] = figures_hot.hot_path(bench.space("hot"), runs)
            timings.append(f"hot path {time.perf_counter() - t:.0f} s")
        if "7" in only:
            t = phase(f"7. the commands a person types, {runs} runs")
            space = bench.space("cli")
            bench.rows["7"] = figures_cli.commands(space, runs)
            space.close()
            timings.append(f"commands {time.perf_counter() - t:.0f} s")
        if "8" in only:
            t = phase(f"8. pull requests, {runs} runs")
            space = bench.space("forge")
            bench.rows["8"] = figures_forge.forge(space, runs)
            space.close()
            timings.append(f"pull requests {time.perf_counter() - t:.0f} s")
        if "9" in only:
            t = phase("9. the conflict radar at 20 and 50 branches")
            space = bench.space("radar")
            bench.rows["9"] = figures_radar.radar(space, [10, 20] if q else [20, 50])
            space.close()
            timings.append(f"radar {time.perf_counter() - t:.0f} s")
        if "10" in only:
            t = phase("10. the dashboards, 50 tasks")
            space = bench.space("dash")
            bench.rows["10"] = figures_dash.dashboards(space, rest=10.0 if q else 30.0)
            space.close()
            timings.append(f"dashboards {time.perf_counter() - t:.0f} s")
        if "4" in only:
            t = phase(f"4. inbox, {writers} writers x {messages} messages")
            bench.rows["4"] = figures_inbox.inbox(bench.space("inbox"), writers, messages, timeout=300)
            timings.append(f"inbox {time.perf_counter() - t:.0f} s")
        if "2" in only:
            t = phase(f"2. reconcile, fleet {fleet}")
            space = bench.space("fleet")
            bench.rows["2"] = figures_fleet.fleet(space, bench.shims, fleet, spawn_timeout=180)
            space.close()  # its workers are not needed any more
            timings.append(f"reconcile {time.perf_counter() - t:.0f} s")
        if "11" in only:
            t = phase(f"11. many hosts, {n_hosts} x {per_host}")
            bench.rows["11"] = figures_cluster.cluster(bench.tmp, n_hosts, per_host)
            timings.append(f"many hosts {time.perf_counter() - t:.0f} s")
        window = None
        if only & {"3", "6"}:
            space = bench.space("spawn")
            t = phase(f"3. spawn {spawn_counts} tasks at once, {spawn_reps} times")
            rows, kept = figures_spawn.spawn(space, bench.shims, spawn_counts, spawn_reps[: len(spawn_counts)])
            if "3" in only:
                off = bench.space("spawn-off")
                off.config('sandbox = "off"')
                off_rows, _ = figures_spawn.spawn(off, bench.shims, [1], spawn_reps[:1], how=", sandbox off")
                off.close()
                bench.rows["3"] = rows[:1] + off_rows + rows[1:]
            timings.append(f"spawn {time.perf_counter() - t:.0f} s")
            if "6" in only:
                phase(f"6. daemon at rest with {len(kept)} idle workers, {rest:g} s (in the background)")
                window = figures_daemon.RestWindow(space, len(kept), rest).start()
        if "5" in only:
            t = phase(f"5. delivery fidelity, {texts} texts (and {compare} without a daemon)")
            space = bench.space("send")
            worker = space.spawn(["fidelity"], timeout=60)[0]
            bench.rows["5"], lines = figures_delivery.fidelity(space, worker, texts, compare)
            bench.notes += lines
            timings.append(f"delivery {time.perf_counter() - t:.0f} s")
        if window is not None:
            t = time.perf_counter()
            bench.rows["6"] = window.finish()
            timings.append(f"then the daemon at rest {time.perf_counter() - t:.0f} s more")
    finally:
        bench.close()
    text = bench.table()
    for line in bench.notes:
        print(line)
    print(f"bench: {time.perf_counter() - began:.0f} s in all ({', '.join(timings)})")
    print()
    print(text)
    if out:
        Path(out).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
