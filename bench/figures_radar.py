"""Figure 9, the conflict radar's cost in a pass, at 20 and 50 open task branches: every pair and each branch
against the base. Each branch changes a file of its own and one of five shared files, so that a fifth of the pairs
meet on a path (those are merged in memory; the others are skipped). Measured in this process: the first pass (every
merge computed), a pass after one branch moved (only its pairs computed, the rest from the cache), and a pass with
nothing moved (the last radar taken whole)."""

from __future__ import annotations

import statistics
import time

from common import Space, environ

REPEAT = 5


def radar(space: Space, sizes: list[int]) -> list[tuple[str, str, str, str]]:
    from orch import git
    from orch.workflow import radar as R
    from orch.workflow.context import Ctx
    from orch.workspace import find

    rows_out = []
    made = 0
    for n in sizes:
        _branches_more(space, made, n)
        made = n
        with environ(ORCH_TMUX_SOCKET=space.socket):
            ctx = Ctx(find(explicit=str(space.repo)))
            rows = {s: r for s, r in ctx.store.task_rows().items()}
            heads = git.branch_heads(str(space.repo), "orch/")
            ctx.store.db.execute("DELETE FROM radar_pairs")
            ctx.store.db.execute("DELETE FROM radar_files")
            start = time.perf_counter()
            first = R.compute(ctx, rows, heads)
            cold = time.perf_counter() - start
            moved, after = [], None
            for k in range(REPEAT):
                slug = f"b{k:02d}"
                space.run("git", "checkout", "-q", f"orch/{slug}")
                (space.repo / f"own-{slug}.txt").write_text(f"{slug} again {n} {k}\n")
                space.run("git", "commit", "-q", "-am", f"{slug} again")
                space.run("git", "checkout", "-q", "main")
                heads = git.branch_heads(str(space.repo), "orch/")
                start = time.perf_counter()
                after = R.compute(ctx, rows, heads)
                moved.append(time.perf_counter() - start)
            still = []
            for _ in range(REPEAT):
                start = time.perf_counter()
                R.compute(ctx, rows, heads, after)
                still.append(time.perf_counter() - start)
            ctx.close()
        pairs = n * (n - 1) // 2 + n
        assert after is not None
        rows_out += [
            (f"radar, {n} branches ({pairs} pairs with the base): first pass", f"{cold * 1000:.0f} ms", "-",
             f"{first.computed} merged, {first.skipped} skipped (no path in common), {first.cached} cached"),
            (f"radar, {n} branches: one branch moved", f"{statistics.median(moved) * 1000:.1f} ms",
             f"{min(moved) * 1000:.1f}–{max(moved) * 1000:.1f}",
             f"{after.computed} merged, {after.cached} from the cache, {after.skipped} skipped"),
            (f"radar, {n} branches: nothing moved", f"{statistics.median(still) * 1000:.2f} ms",
             f"{min(still) * 1000:.2f}–{max(still) * 1000:.2f}", "the last radar, taken whole"),
        ]
    return rows_out


def _branches_more(space: Space, have: int, n: int) -> None:
    if n > have:
        _branches_from(space, have, n)


def _branches_from(space: Space, start: int, n: int) -> None:
    from orch.store import TaskRow
    from orch.workflow.context import Ctx
    from orch.workspace import find

    for i in range(start, n):
        slug = f"b{i:02d}"
        space.run("git", "checkout", "-q", "-b", f"orch/{slug}", "main")
        (space.repo / f"own-{slug}.txt").write_text(f"{slug}\n")
        (space.repo / f"shared-{i % 5}.txt").write_text(f"written by {slug}\n")
        space.run("git", "add", "-A")
        space.run("git", "commit", "-q", "-m", slug)
    space.run("git", "checkout", "-q", "main")
    with environ(ORCH_TMUX_SOCKET=space.socket):
        ctx = Ctx(find(explicit=str(space.repo)))
        for i in range(start, n):
            row = TaskRow(f"b{i:02d}", "coding", {}, {"branch": f"orch/b{i:02d}"}, 0, time.time())
            with ctx.store.edit_task(row.slug, lambda row=row: (row, [])):
                pass
        ctx.close()
