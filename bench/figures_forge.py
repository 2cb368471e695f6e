"""Figure 8, the pull requests' cost in a pass: 20 tasks with live coders, each with a PR on the scripted forge
(tests/kit/forge_server.py: HTTPS on loopback, the real `gh`), 3 checks, 2 review threads and a review each.
`orch scan` with the forge asked on every pass (``interval = 0``) next to the same pass when the forge is not due
(``interval`` a day), interleaved, and the requests the forge saw per pass (the goal: one for all 20)."""

from __future__ import annotations

import statistics
import sys

from common import HERE, ORCH, Space, spread, timed

TASKS = 20


def forge(space: Space, runs: int) -> list[tuple[str, str, str, str]]:
    sys.path.insert(0, str(HERE.parent))
    from tests.kit.forge_server import ForgeServer

    remote = space.repo.parent / f"{space.name}-remote.git"
    space.run("git", "init", "-q", "--bare", "-b", "main", str(remote))
    space.run("git", "remote", "add", "origin", str(remote))
    with ForgeServer(bare=str(remote), ca_dir=str(space.repo.parent)) as server:
        space.env.update(server.env())
        slugs = [f"pr{i:02d}" for i in range(TASKS)]
        for slug in slugs:
            pull = server.add_pull(f"orch/{slug}", sha=f"{int(slug[2:]) + 1:040x}")
            pull.threads = [{"id": f"{slug}-T{k}", "path": "src/a.py", "line": k + 1, "resolved": k == 0,
                             "comments": [{"author": "alice", "body": "a remark"}]} for k in range(2)]
            pull.reviews = [{"author": "bob", "state": "COMMENTED"}]
        server.checks = lambda pull, sha: [{"name": n, "conclusion": "success"} for n in ("tests", "lint", "docs")]
        cfg = space.repo / ".orch" / "config.toml"
        base = cfg.read_text()
        asked = base.replace("\n[forge]\n", f'\n[forge]\nrepo = "{server.repo}"\ninterval = 0\n')
        not_due = base.replace("\n[forge]\n", f'\n[forge]\nrepo = "{server.repo}"\ninterval = 86400\n')
        cfg.write_text(asked)
        space.spawn(slugs, timeout=120)
        space.orch("scan")
        known = sum(1 for t in space.status()["tasks"] if t["pull_request"])
        if known != TASKS:
            raise SystemExit(f"bench (forge): {known} of {TASKS} PRs found")
        env, cwd = space.env, str(space.repo)
        with_forge: list[float] = []
        without: list[float] = []
        floor: list[float] = []
        requests = []
        for i in range(runs + 2):
            cfg.write_text(asked)
            before = len(server.requests)
            took = timed([ORCH, "scan"], env, cwd)
            seen = len(server.requests) - before
            cfg.write_text(not_due)
            took_without = timed([ORCH, "scan"], env, cwd)
            f = timed([sys.executable, "-c", "pass"], env, cwd)
            if i >= 2:
                with_forge.append(took)
                without.append(took_without)
                floor.append(f)
                requests.append(seen)
        cfg.write_text(base)
    a, b = statistics.median(with_forge), statistics.median(without)
    return [
        ("`python -c pass` (floor of this figure)", f"{statistics.median(floor) * 1000:.1f} ms", spread(floor), "1.00x"),
        (f"`orch scan`, {TASKS} live tasks, forge not due", f"{b * 1000:.1f} ms", spread(without),
         f"{b / statistics.median(floor):.2f}x floor"),
        (f"`orch scan`, {TASKS} live tasks with a PR each, forge asked", f"{a * 1000:.1f} ms", spread(with_forge),
         f"+{(a - b) * 1000:.0f} ms for the forge; {max(requests)} request(s) per pass "
         f"(min {min(requests)}), for {TASKS} PRs"),
    ]
