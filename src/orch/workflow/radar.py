"""The conflict radar: for every pair of open task branches, and each against the base, whether they merge cleanly
and which paths conflict, with no worktree (``git merge-tree --write-tree``).

Everything is keyed by shas and cached in the store, so a pass computes only what moved. Two branches that change
no path in common cannot conflict: only pairs whose changed paths meet are merged in a tree. A new conflict between
two tasks in flight is told once to both coders (per pair of heads), through the outbox rules. The last radar is
kept in ``.orch/radar.json`` for `orch status`; `orch conflicts` computes it afresh.
"""

from __future__ import annotations

import json
import time

from orch.files import atomic_write
from orch.lifecycle import TaskState
from orch.record import dataclass, field, replace
from orch.store import Reaction, TaskRow
from orch.workflow.context import Ctx

S = TaskState
SAVED = "radar.json"


def in_flight(state: str) -> bool:
    """A task whose branch is work not landed yet (queued ones have none; merged and done ones have landed)."""
    return state not in (S.QUEUED, S.DONE, "merged")


@dataclass
class Radar:
    base: str
    base_sha: str
    heads: dict[str, str] = field(default_factory=dict)  # task -> head sha
    vs_base: dict[str, list[str]] = field(default_factory=dict)  # task -> paths conflicting with the base
    pairs: dict[str, dict[str, list[str]]] = field(default_factory=dict)  # task -> other task -> conflicting paths
    changed: dict[str, list[str]] = field(default_factory=dict)  # task -> paths its branch changes
    computed: int = 0  # merges done in this pass
    cached: int = 0  # pair outcomes taken from the cache
    skipped: int = 0  # pairs with no path in common (clean without a merge)
    at: float = 0.0

    def as_dict(self) -> dict:
        return {"base": self.base, "base_sha": self.base_sha, "at": self.at, "heads": self.heads,
                "vs_base": self.vs_base, "pairs": self.pairs, "changed": self.changed, "computed": self.computed,
                "cached": self.cached, "skipped": self.skipped}

    def word(self, slug: str) -> str:
        """The task's radar in a few words (`orch status`'s column)."""
        if slug not in self.heads:
            return ""
        parts = []
        if self.vs_base.get(slug):
            parts.append(self.base)
        parts += sorted(self.pairs.get(slug, {}))
        return ("conflicts: " + ", ".join(parts)) if parts else "clean"


def base_of(ctx: Ctx) -> tuple[str, str]:
    """The workspace's base branch and its commit ("" when there is none: a detached HEAD and no ``base``)."""
    from orch import git

    base = ctx.cfg.base or git.head_branch(ctx.ws.root) or ""
    return base, (git.branch_tip(ctx.ws.root, base) or "") if base else ""


def compute(ctx: Ctx, rows: dict[str, TaskRow], heads: dict[str, str] | None = None,
            last: Radar | None = None) -> Radar:
    """The radar of the open task branches in ``rows`` (their heads read from git unless given); ``last``: the
    previous radar, taken whole when neither the base nor any head moved."""
    from orch import git

    base, base_sha = base_of(ctx)
    radar = Radar(base, base_sha, at=time.time())
    if heads is None:
        heads = git.branch_heads(ctx.ws.root, ctx.cfg.branch_prefix)
    for slug, row in sorted(rows.items()):
        branch = row.meta.get("branch") or ctx.cfg.branch_prefix + slug
        head = heads.get(branch) if branch.startswith(ctx.cfg.branch_prefix) else git.rev(ctx.ws.root, branch)
        if head and in_flight(row.state) and head != base_sha:
            radar.heads[slug] = head
    if not radar.heads or not base_sha:
        return radar
    if last is not None and last.base_sha == base_sha and last.heads == radar.heads:
        return replace(last, cached=last.cached + last.computed, computed=0)
    radar.changed = _changed(ctx, base_sha, radar.heads)
    slugs = sorted(radar.heads)
    wanted: list[tuple[str, str, str, str]] = []  # (slug a, slug b or "", sha a, sha b)
    for i, a in enumerate(slugs):
        if radar.changed[a]:
            wanted.append((a, "", radar.heads[a], base_sha))
        for b in slugs[i + 1:]:
            if set(radar.changed[a]) & set(radar.changed[b]):
                wanted.append((a, b, radar.heads[a], radar.heads[b]))
            else:
                radar.skipped += 1
    keys: list[tuple[str, str]] = [(x, y) if x < y else (y, x) for _, _, x, y in wanted]
    known = ctx.store.radar_pairs(list(set(keys)))
    fresh = _merge_all(ctx, [k for k in dict.fromkeys(keys) if k not in known])
    radar.computed = len(fresh)
    for (a, b, _, _), key in zip(wanted, keys, strict=True):
        if key in known:
            radar.cached += 1
            paths = known[key]
        else:
            paths = fresh[key]
        if paths is None:
            continue
        if not b:
            radar.vs_base[a] = paths
        else:
            radar.pairs.setdefault(a, {})[b] = paths
            radar.pairs.setdefault(b, {})[a] = paths
    ctx.store.put_radar_pairs(fresh)
    return radar


SIDE_BY_SIDE = 4  # merges run at once (each is one git process, mostly waiting on the disk and one core)


def _merge_all(ctx: Ctx, keys: list[tuple[str, str]]) -> dict[tuple[str, str], list[str] | None]:
    """Each pair merged in memory, a few side by side: None when clean, else the conflicting paths."""
    from orch import git

    out: dict[tuple[str, str], list[str] | None] = {}
    for i in range(0, len(keys), SIDE_BY_SIDE):
        batch = [(key, git.start_conflicts(ctx.ws.root, key[0], key[1])) for key in keys[i:i + SIDE_BY_SIDE]]
        for key, running in batch:
            try:
                clean, found = git.conflicts(ctx.ws.root, key[0], key[1], started=running)
            except git.GitError as exc:  # (unrelated histories: a base rewritten under the task)
                clean, found = False, [f"({str(exc).split(': ', 1)[-1].removeprefix('fatal: ')})"]
            out[key] = None if clean else found
    return out


def _changed(ctx: Ctx, base_sha: str, heads: dict[str, str]) -> dict[str, list[str]]:
    """The paths each head changes since it left the base (cached by base and head)."""
    from orch import git

    shas = sorted(set(heads.values()))
    known = ctx.store.radar_files(base_sha, shas)
    fresh = {}
    for sha in shas:
        if sha not in known:
            fork = git.merge_base(ctx.ws.root, base_sha, sha)
            fresh[sha] = git.changed_files(ctx.ws.root, fork, sha) if fork else ["(no history in common with the base)"]
    ctx.store.put_radar_files(base_sha, fresh)
    files = {**known, **fresh}
    return {slug: files[sha] for slug, sha in heads.items()}


def save(ctx: Ctx, radar: Radar) -> None:
    atomic_write(ctx.ws.path(SAVED), (json.dumps(radar.as_dict()) + "\n").encode("utf-8"), mode=0o644)


def load(ctx: Ctx) -> Radar | None:
    """The radar as the last pass left it (None before the first)."""
    try:
        with open(ctx.ws.path(SAVED), encoding="utf-8") as fh:
            d = json.load(fh)
        return Radar(d["base"], d["base_sha"], d["heads"], d["vs_base"], d["pairs"], d["changed"], d["computed"],
                     d["cached"], d["skipped"], d["at"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def of(radar: Radar | None, slug: str) -> dict | None:
    """One task's part of the radar (`orch status --json`): None when its branch is not in it."""
    if radar is None or slug not in radar.heads:
        return None
    return {"head": radar.heads[slug], "with_base": radar.vs_base.get(slug, []),
            "with": dict(sorted(radar.pairs.get(slug, {}).items()))}


def report(radar: Radar) -> dict:
    """`orch conflicts --json`."""
    pairs = sorted({(a, b) if a < b else (b, a) for a, others in radar.pairs.items() for b in others})
    return {"base": radar.base, "base_sha": radar.base_sha, "tasks": radar.heads,
            "with_base": {slug: radar.vs_base.get(slug, []) for slug in radar.heads},
            "pairs": [{"a": a, "b": b, "paths": radar.pairs[a][b]} for a, b in pairs],
            "computed": radar.computed, "cached": radar.cached, "skipped": radar.skipped}


def matrix(radar: Radar) -> list[str]:
    """`orch conflicts`: the matrix (x: they conflict, .: they merge cleanly), then each conflict's paths."""
    slugs = sorted(radar.heads)
    if not slugs:
        return ["no open task branches"]
    names = [radar.base, *slugs]
    width = max(len(n) for n in names)
    lines = [" " * (width + 2) + " ".join(str(i) for i in range(len(names)))]
    for i, slug in enumerate(slugs, start=1):
        cells = ["x" if radar.vs_base.get(slug) else "."]
        cells += ["-" if other == slug else ("x" if other in radar.pairs.get(slug, {}) else ".") for other in slugs]
        lines.append(f"{slug:<{width}} {i} " + " ".join(cells))
    lines.insert(1, f"{radar.base:<{width}} 0 " + " ".join(["-"] + ["x" if radar.vs_base.get(s) else "." for s in slugs]))
    found = []
    for slug in slugs:
        if radar.vs_base.get(slug):
            found.append(f"{slug} x {radar.base}: {', '.join(radar.vs_base[slug])}")
        for other, paths in sorted(radar.pairs.get(slug, {}).items()):
            if slug < other:
                found.append(f"{slug} x {other}: {', '.join(paths)}")
    lines += ["", *(found or ["no conflicts"])]
    lines.append(f"({radar.computed} merge(s) computed now, {radar.cached} from the cache, {radar.skipped} pair(s) "
                 "with no path in common)")
    return lines


def note_text(slug: str, other: str, branch: str, paths: list[str]) -> str:
    shown = ", ".join(paths[:10]) + (" ..." if len(paths) > 10 else "")
    return (f"# orch: a note for task {slug} (no new round)\n\n"
            f"Your branch and the branch of task `{other}` ({branch}), also in progress, both change {shown}: "
            f"merging both would conflict. Keep your changes to those paths to what the task needs; if you need "
            f"`{other}`'s work first, say so with `blocked:`. Then go on with your task.\n")


def tell(ctx: Ctx, radar: Radar, rows: dict[str, TaskRow]) -> list[str]:
    """Each new conflict between two tasks in flight, told once to both coders (per pair of heads)."""
    pending = []
    for slug, others in radar.pairs.items():
        for other, paths in others.items():
            key, sha = f"conflict:{other}", f"{radar.heads[slug]}:{radar.heads[other]}"
            pending.append(Reaction(slug, key, sha, "conflict", 0, ", ".join(paths), time.time()))
    if not pending:
        return []
    fresh = ctx.store.react(pending)
    if not fresh:
        return []
    from orch.workflow import deliver, review

    panes = ctx.panes()
    did = []
    for r in fresh:
        other = r.key.split(":", 1)[1]
        branch = rows[other].meta.get("branch") or ctx.cfg.branch_prefix + other
        paths = radar.pairs[r.task][other]
        pane = review.live_pane(panes, r.task, "coder")
        from orch.workflow import tasks as T

        T.record(ctx, r.task, status=f"conflict radar: its branch and {other}'s both change {', '.join(paths[:5])}"
                                     f"{' ...' if len(paths) > 5 else ''}: merging both would conflict"
                                     + (" (its coder was told)" if pane else ""))
        if pane is not None:
            deliver.send_or_queue(ctx, pane, note_text(r.task, other, branch, paths), f"conflict note ({other})")
        did.append(f"{r.task}: conflicts with {other} in {', '.join(paths[:3])}")
    return did


# -- queued tasks that wait for overlapping work ---------------------------------------------------------------


def overlap(globs: list[str], other_globs: list[str], changed: list[str]) -> str | None:
    """The first of ``globs`` that meets the other task's declared paths or the files its branch changed."""
    import fnmatch

    for g in globs:
        if any(fnmatch.fnmatchcase(path, g) for path in changed):
            return g
        for o in other_globs:
            if _meet(g, o):
                return g
    return None


def _meet(a: str, b: str) -> bool:
    """Can two globs match a common path? (One matches the other, or one's literal start is the other's.)"""
    import fnmatch

    if fnmatch.fnmatchcase(a, b) or fnmatch.fnmatchcase(b, a):
        return True
    pa, pb = _literal(a), _literal(b)
    return pa.startswith(pb) or pb.startswith(pa)


def _literal(glob: str) -> str:
    for i, c in enumerate(glob):
        if c in "*?[":
            return glob[:i]
    return glob


def waits(tasks: dict, radar: Radar | None, rows: dict[str, TaskRow]) -> dict[str, list[str]]:
    """Queued tasks with ``paths:`` (and not ``parallel: true``) whose paths overlap work in flight: what each
    waits for ("api: overlaps src/api/**")."""
    out: dict[str, list[str]] = {}
    for slug, task in tasks.items():
        if task.state != S.QUEUED or not task.paths or task.parallel:
            continue
        for other, row in rows.items():
            if other == slug or not in_flight(row.state):
                continue
            other_task = tasks.get(other)
            declared = other_task.paths if other_task is not None else []
            changed = radar.changed.get(other, []) if radar is not None else []
            hit = overlap(task.paths, declared, changed)
            if hit:
                out.setdefault(slug, []).append(f"{other}: overlaps {hit}")
    return out


def wants_radar(tasks: dict) -> bool:
    return any(t.paths for t in tasks.values() if t.state == S.QUEUED)


