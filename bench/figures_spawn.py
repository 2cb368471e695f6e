"""Figure 3, spawn: from writing the task file (what `orch add` does) to the agent having its prompt, confirmed, for 1
task and for N tasks at once. `orch scan` starts them: worktree, tmux window, the agent, and the prompt typed when the
agent is ready and confirmed before it returns. The timing shim logs every git and tmux call it makes, so the share of
`git worktree add` (and of all git and tmux calls) is reported from the same runs."""

from __future__ import annotations

import statistics
import time

from common import IDLE_TASK, BenchError, Shims, Space, spread


def _check_prompted(space: Space, slugs: list[str], timeout: float = 10.0) -> list[dict]:
    """Every new coder took its prompt: the scripted agent recorded it."""
    workers = [w for w in space.workers() if w["role"] == "coder" and w["id"].split(":")[0] in slugs]
    deadline = time.monotonic() + timeout
    missing = workers
    while missing and time.monotonic() < deadline:
        missing = [w for w in missing
                   if not any(t.startswith("# orch: coder prompt") for t in space.received(w["id"]))]
        if missing:
            time.sleep(0.1)
    if len(workers) != len(slugs) or missing:
        raise BenchError(f"bench (spawn): {len(workers)} coder(s) for {len(slugs)} task(s); without their prompt: "
                         f"{[w['id'] + ' ' + w['state'] + ' ' + w['note'] for w in missing][:5]}")
    return workers


def _remove(space: Space, slugs: list[str]) -> None:
    """Kill the tasks' sessions, remove their worktrees, branches and task files; one scan forgets the workers."""
    args: list[str] = []
    for slug in slugs:
        args += ([";"] if args else []) + ["kill-session", "-t", "task-" + slug]
    space.tmux(*args)
    for slug in slugs:
        space.run("git", "worktree", "remove", "--force", str(space.repo / ".worktree" / slug))
        space.run("git", "branch", "-q", "-D", "orch/" + slug)
        (space.tasks / f"{slug}.md").unlink()
    space.orch("scan")


def spawn(space: Space, shims: Shims, counts: list[int], reps: list[int],
          how: str = "") -> tuple[list[tuple[str, str, str, str]], list[dict]]:
    """Each count of tasks started at once, ``reps[i]`` times. Returns the rows, and the workers of the last batch of
    the largest count (left running for later figures). ``how``: said in the rows' labels (", sandbox off")."""
    env = {**space.env, "PATH": shims.path("timing", space.env["PATH"])}
    space.orch("scan")  # warm-up: an empty pass
    rows = []
    kept: list[dict] = []
    for count, times in zip(counts, reps, strict=True):
        walls, wt_add, git_all, git_calls, tmux_all, tmux_calls, typing = [], [], [], [], [], [], []
        for rep in range(times):
            slugs = [f"s{count}-r{rep}-{i:02d}" for i in range(count)]
            shims.reset()
            epoch = time.time()
            start = time.perf_counter()
            for slug in slugs:
                space.write_task(slug, IDLE_TASK)
            out = space.orch("scan", env=env)
            walls.append(time.perf_counter() - start)
            calls = shims.timed_calls()
            git = [(t1 - t0, a) for tool, t0, t1, a in calls if tool == "git"]
            tmux = [(t0 - epoch, t1 - t0, a) for tool, t0, t1, a in calls if tool == "tmux"]
            wt_add.append(sum(d for d, a in git if " worktree add " in f" {a} "))
            git_all.append(sum(d for d, _ in git))
            git_calls.append(len(git))
            tmux_all.append(sum(d for _, d, _ in tmux))
            tmux_calls.append(len(tmux))
            pastes = [at for at, _, a in tmux if " paste-buffer " in f" {a} "]
            created = [at for at, _, a in tmux if " new-session " in f" {a} "]
            typing.append((max(created) if created else 0.0, min(pastes) if pastes else 0.0, max(pastes) if pastes else 0.0))
            if "started: " not in out:
                raise BenchError(f"bench (spawn): `orch scan` started nothing: {out.strip()}")
            workers = _check_prompted(space, slugs)
            if count == max(counts) and rep == times - 1:
                kept = workers
            else:
                _remove(space, slugs)
        wall = statistics.median(walls)
        share = statistics.median(wt_add)
        label = ("spawn 1 task" if count == 1 else f"spawn {count} tasks at once") + how
        note = (f"`git worktree add` {share * 1000:.0f} ms ({share / wall:.0%}); all git: {statistics.median(git_all) * 1000:.0f} ms "
                f"in {statistics.median(git_calls):.0f} calls; tmux: {statistics.median(tmux_all) * 1000:.0f} ms in "
                f"{statistics.median(tmux_calls):.0f} calls")
        made, first, last = (statistics.median(t[i] for t in typing) for i in range(3))
        if count > 1:
            note = (f"{wall / count * 1000:.0f} ms per task; last window created at {made:.1f} s, prompts pasted "
                    f"from {first:.1f} s to {last:.1f} s; " + note)
        else:
            note = f"window created at {made:.1f} s, prompt pasted at {first:.1f} s; " + note
        rows.append((f"{label}: task file to prompt confirmed (`orch scan`)", f"{wall * 1000:.0f} ms", spread(walls), note))
    return rows, kept

