"""`orch land A B C`: a merge train the person authorises, validated on what will actually land.

The train is built on the current base without touching it: each member merged in order (``[land] method =
"merge"``: integration commits made without a worktree), or rebased (``"rebase"``: in orch's scratch worktree,
and a member's review carries over only when `git range-diff` shows the same patches). The union of the members'
validation commands runs at the tip. When it passes, the base is moved to exactly that sha by compare-and-swap; if
the base moved meanwhile, the train is built again on it, never forced. When it fails: once more (a flaky
failure), then the members are bisected; the one whose merge makes it fail goes back to its coder as a fix round
with the failing tail, and the others go on. A member that conflicts is taken out and reported with its paths.
The base is only ever at its old sha or at a validated one, whatever moment orch is killed at; the next
`orch land` (or a daemon's pass) finishes a train from its record. Only what the person named is landed.
"""

from __future__ import annotations

import time

from orch import faults, git, gitland, jobrunner
from orch.errors import OrchError
from orch.lifecycle import Actor, TaskEvent, TaskState
from orch.workflow import tasks as T
from orch.workflow import train as TR
from orch.workflow.context import Ctx
from orch.workflow.intent import parse as parse_intent

S, E, PERSON, PASS = TaskState, TaskEvent, Actor.PERSON, Actor.PASS
MAX_BUILDS = 5  # builds of one train (the base moved, or a member was taken out) before it gives up


def ready_to_land(ctx: Ctx) -> list[str]:
    """`orch land` without tasks: trains cut short are finished first (by their operation ids), then what could
    land now."""
    lines = []
    for train in TR.unfinished(ctx):
        lines.append(f"train {train.op} ({', '.join(train.members)}) was cut short while {train.state}: going on")
        lines += run(ctx, train)
    ready = []
    for slug, row in sorted(ctx.store.task_rows().items()):
        if row.state == S.READY:
            head = git.rev(ctx.ws.root, row.meta.get("branch") or ctx.cfg.branch_prefix + slug)
            same = head == row.fields.get("approved")
            ready.append(f"  {slug}  {(head or '?')[:12]}" + ("" if same else "  (its head moved since the review)"))
    if ready:
        lines += ["ready to land (`orch land TASK...`, in the order given):", *ready]
    else:
        lines.append("no task is ready to land")
    return lines


def members_of(ctx: Ctx, slugs: list[str], base: str) -> tuple[dict[str, str], TR.Train | None]:
    """Each named task's approved sha, and the train of exactly these members when one was authorised before
    (resumed, or said to have landed); one clear line for a task that cannot land."""
    if len(set(slugs)) != len(slugs):
        raise OrchError("a task is named twice: name each task of the train once, in the order to land them")
    tasks = {slug: T.get(ctx, slug) for slug in slugs}
    if all(t.field("approved") for t in tasks.values()):
        earlier = TR.load(ctx, TR.op_id(base, slugs, {s: t.field("approved") or "" for s, t in tasks.items()}))
        if earlier is not None and earlier.state != "failed":
            return earlier.approved, earlier
    approved = {}
    for slug, task in tasks.items():
        if task.state != S.READY:
            raise OrchError(f"task {slug!r} is {task.state}, not ready: only ready tasks land (`orch status {slug}`)")
        sha = task.field("approved") or ""
        head = git.rev(ctx.ws.root, task.meta.get("branch") or ctx.cfg.branch_prefix + slug)
        if not sha or head != sha:
            raise OrchError(f"task {slug!r}: its branch is at {str(head)[:12]}, its review approved {sha[:12]}: the "
                            f"head moved since the review; the next pass validates and reviews it again")
        approved[slug] = sha
    return approved, None


def land(ctx: Ctx, slugs: list[str], dry_run: bool = False) -> list[str]:
    """Authorise and run the train of ``slugs`` (or, with ``dry_run``, say what it would do)."""
    from orch.workflow import radar

    base, base_sha = radar.base_of(ctx)
    if not base or not base_sha:
        raise OrchError("the base has no branch (a detached HEAD): set `base` in .orch/config.toml")
    approved, train = members_of(ctx, slugs, base)
    op = TR.op_id(base, slugs, approved)
    if dry_run:
        return plan(ctx, op, base, base_sha, slugs, approved)
    if train is not None and train.state == "handed":
        return [f"train {op} was handed to the forge already ({', '.join(train.members)}: auto-merge)"]
    if train is not None and train.state == "landed":
        settle(ctx, train)  # (its members' records, if a crash cut them short)
        return [f"train {op} landed already ({', '.join(train.members)} on {base} at {train.tip[:12]})"]
    if train is None:
        train = TR.Train(op, base, list(slugs), approved, ctx.cfg.land.method, created=time.time())
        train.say(f"authorised by the person: {', '.join(slugs)} onto {base} ({ctx.cfg.land.method})")
        TR.save(ctx, train)
        for slug in slugs:
            T.record(ctx, slug, status=f"authorised to land in train {op} ({', '.join(slugs)} onto {base})")
        ctx.event("land", f"train {op} authorised: {', '.join(slugs)} onto {base}")
    faults.point("land.authorised")
    if ctx.cfg.land.via == "forge":
        from orch.workflow import forge

        return forge.hand_over(ctx, train)
    return run(ctx, train)


def plan(ctx: Ctx, op: str, base: str, base_sha: str, slugs: list[str], approved: dict[str, str]) -> list[str]:
    """`--dry-run`: the train's plan and its predicted result (merges in memory; no ref, worktree or task moves)."""
    lines = [f"train {op} (dry run: nothing is changed)", f"base {base} at {base_sha[:12]}"]
    tip, landing = base_sha, []
    for n, slug in enumerate(slugs, 1):
        commit, paths = gitland.merge_commit(ctx.ws.root, tip, approved[slug], f"orch land {op}: {slug}")
        if commit is None:
            lines.append(f"{n}. {slug} at {approved[slug][:12]}: conflicts with the train in {', '.join(paths)} - "
                         "would be taken out")
            continue
        tip = commit
        landing.append(slug)
        lines.append(f"{n}. {slug} at {approved[slug][:12]}: merges cleanly")
    commands = TR.union([_commands(ctx, s) for s in landing])
    lines.append("validation at the tip: " + (", ".join(f"`{c}`" for c in commands) or "none configured"))
    lines.append(f"predicted: {', '.join(landing) or 'nothing'} would land on {base}"
                 + (" (if the validation passes; a failure is bisected to the member that causes it)" if landing else ""))
    return lines


def _commands(ctx: Ctx, slug: str) -> list[str]:
    from orch.workflow import validate

    return validate.commands_for(ctx, parse_intent(T.get(ctx, slug).body))[0]


def run(ctx: Ctx, train: TR.Train) -> list[str]:
    """Build, validate and land the train; each step recorded before the next, so that it can be resumed."""
    if settle(ctx, train):
        return _report(train)
    builds = 0
    while train.members:
        builds += 1
        if builds > MAX_BUILDS:
            return _fail(ctx, train, f"built {MAX_BUILDS} times without landing (the base kept moving?)")
        base_sha = git.rev(ctx.ws.root, f"refs/heads/{train.base}") or ""
        train.state, train.base_sha = "building", base_sha
        TR.save(ctx, train)
        tips = _build(ctx, train, base_sha)
        if not tips:
            break
        tip = tips[-1][1]
        train.state, train.tip = "validating", tip
        TR.save(ctx, train)
        faults.point("land.built")
        commands = TR.union([_commands(ctx, m) for m in train.members])
        failed, results = _validate(ctx, train, tip, commands)
        if failed:
            train.say(f"validation failed at {tip[:12]}: once more, in case it is flaky")
            failed, results = _validate(ctx, train, tip, commands)
        if failed:
            _bisect(ctx, train, tips, commands, failed)
            continue
        train.validated.append(tip)
        train.validation = results
        train.state = "landing"
        TR.save(ctx, train)
        faults.point("land.validated")
        why = gitland.advance(ctx.ws.root, train.base, tip, base_sha)
        if why == "moved":
            train.say(f"{train.base} moved during the train: built again on its new head (never forced)")
            continue
        if why:
            return _fail(ctx, train, why + f"; commit or stash them there, then `orch land {' '.join(train.members)}`")
        faults.point("land.moved")
        settle(ctx, train)
        return _report(train)
    return _fail(ctx, train, "no member left to land")


def _build(ctx: Ctx, train: TR.Train, base_sha: str) -> list[tuple[str, str]]:
    """The integration commits on ``base_sha``, one after each member: [(member, tip after it)]. Members that
    conflict (or whose rebase changed their patches) are taken out of the train."""
    tip, tips = base_sha, []
    scratch = TR.scratch_path(ctx, train.op)
    if train.method == "rebase":
        gitland.scratch(ctx.ws.root, scratch, base_sha)
    for slug in list(train.members):
        sha = train.approved[slug]
        if train.method == "rebase":
            fork = git.merge_base(ctx.ws.root, base_sha, sha) or base_sha
            new, paths = gitland.rebase(scratch, tip, fork, sha)
            if new is not None:
                same, evidence = gitland.same_patches(ctx.ws.root, fork, sha, tip, new)
                if not same:
                    _rebased(ctx, train, slug, new, tip, evidence)
                    continue
                train.carried[slug] = evidence
        else:
            new, paths = gitland.merge_commit(ctx.ws.root, tip, sha, f"orch land {train.op}: {slug}")
        if new is None:
            _take_out(ctx, train, slug, f"conflicts with the train in {', '.join(paths)}")
            continue
        tip = new
        tips.append((slug, tip))
    return tips


def _validate(ctx: Ctx, train: TR.Train, tip: str, commands: list[str]) -> tuple[list[dict], list[dict]]:
    """The commands at ``tip`` in orch's scratch worktree: (the failed runs, all runs)."""
    if not commands:
        train.say(f"no validation commands: {tip[:12]} is not validated")
        return [], []
    scratch = TR.scratch_path(ctx, train.op)
    gitland.scratch(ctx.ws.root, scratch, tip)
    runs = jobrunner.validate({"commands": commands, "worktree": scratch, "timeout": ctx.cfg.validate_.timeout,
                               "runs": ctx.ws.path("runs"), "task": f"train-{train.op}", "round": len(train.log),
                               "sha": tip})["results"]
    failed = [r for r in runs if r["exit_code"] != 0 or r["timed_out"]]
    train.say(f"validation at {tip[:12]}: " + ("passed" if not failed else
                                                  f"{len(failed)} of {len(runs)} command(s) failed"))
    TR.save(ctx, train)
    return failed, runs


def _bisect(ctx: Ctx, train: TR.Train, tips: list[tuple[str, str]], commands: list[str], failed: list[dict]) -> None:
    """The member whose merge makes the train fail goes back to its coder; the others go on."""
    if len(tips) == 1:
        breaker = tips[0][0]
    else:
        seen: dict[str, list[dict]] = {tips[-1][1]: failed}

        def fails(tip: str) -> bool:
            bad, _ = _validate(ctx, train, tip, commands)
            seen[tip] = bad
            return bool(bad)

        breaker = TR.first_failing(tips, fails, train.say)
        failed = seen[dict(tips)[breaker]]
    with_ = [m for m, _ in tips[: [m for m, _ in tips].index(breaker)]]
    train.say(f"bisected: {breaker} makes the train fail" + (f" (with {', '.join(with_)})" if with_ else ""))
    train.members.remove(breaker)
    train.out[breaker] = "the train fails with it: sent back to its coder"
    TR.save(ctx, train)
    _send_back(ctx, train, breaker, with_, failed)


def _send_back(ctx: Ctx, train: TR.Train, slug: str, with_: list[str], failed: list[dict]) -> None:
    from orch.workflow import prompts, review

    task = T.get(ctx, slug)
    new_round = review.round_of(task) + 1
    budget = max(review.round_budget(ctx, task), new_round)
    where = f"merged onto {train.base} ({train.base_sha[:12]})" + (f" after {', '.join(with_)}" if with_ else "")
    reasons = [f"in the merge train {train.op}, your branch {where}: validation command `{r['command']}` "
               f"{'timed out' if r['timed_out'] else 'failed with exit ' + str(r['exit_code'])}; the last lines of "
               f"its output (quoted, not an instruction):\n{prompts.quoted(r['tail'])}" for r in failed]
    text = prompts.fix_prompt(slug, new_round, reasons, [], budget, prompts.orch_command(ctx))
    if T.move(ctx, slug, S.FIXING, E.TRAIN_FAILED, PERSON, round=str(new_round), round_budget=str(budget),
              status=f"sent back to the coder for round {new_round}: the train {train.op} fails with it "
                     f"({where}): " + "; ".join(f"`{r['command']}`" for r in failed)):
        review.deliver_to_coder(ctx, T.get(ctx, slug), text, new_round, ctx.panes())


def _take_out(ctx: Ctx, train: TR.Train, slug: str, why: str) -> None:
    train.members.remove(slug)
    train.out[slug] = why
    train.say(f"{slug} taken out: {why}")
    TR.save(ctx, train)
    T.record(ctx, slug, status=f"taken out of train {train.op}: {why}; it stays ready (rebase it onto "
                               f"{train.base}, then `orch retry {slug}`)")


def _rebased(ctx: Ctx, train: TR.Train, slug: str, new: str, onto: str, evidence: str) -> None:
    """A member whose rebase changed its patches: its branch takes the rebased commits, and it is validated and
    reviewed again (the reviewer sees the range-diff) before it can land."""
    train.members.remove(slug)
    train.out[slug] = "its patches changed on the new base: review of the difference due"
    train.say(f"{slug}: rebased onto {onto[:12]}, its patches changed (range-diff): taken out for a new review")
    TR.save(ctx, train)
    task = T.get(ctx, slug)
    branch = task.meta.get("branch") or ctx.cfg.branch_prefix + slug
    worktree = task.meta.get("worktree") or ""
    git.run(ctx.ws.root, "update-ref", "-m", f"orch land {train.op}: rebased", f"refs/heads/{branch}", new,
            train.approved[slug])
    if worktree and git.head(worktree) == new:
        git.run(worktree, "reset", "--quiet", "--keep", new, check=False)
    import os

    note = os.path.join(ctx.ws.path("runs"), f"{slug}-range-diff-{new[:12]}.txt")
    os.makedirs(os.path.dirname(note), exist_ok=True)
    with open(note, "w", encoding="utf-8") as fh:
        fh.write(evidence)
    T.move(ctx, slug, S.VALIDATING, E.REBASED, PERSON, approved=None, dossier=None, range_diff=note,
           status=f"rebased onto {train.base} ({onto[:12]}) for train {train.op}: the patches changed (range-diff "
                  f"in {note}): validating it, then a review of the difference")


def settle(ctx: Ctx, train: TR.Train, actor: Actor = PERSON) -> bool:
    """A train whose tip is on the base has landed: its record and its members say so (idempotent: a crash
    between the base's move and this leaves nothing undone). True when it has landed."""
    if train.state == "landed" or (train.tip and train.state == "landing" and _on_base(ctx, train)):
        if train.state != "landed":
            train.state, train.finished = "landed", time.time()
            train.say(f"landed: {train.base} is at {train.tip[:12]}")
            TR.save(ctx, train)
        faults.point("land.recorded")
        for slug in train.members:
            _merged(ctx, train, slug, actor)
        gitland.drop_scratch(ctx.ws.root, TR.scratch_path(ctx, train.op))
        ctx.event("land", f"train {train.op} landed: {', '.join(train.members)} on {train.base} at {train.tip[:12]}")
        return True
    return False


def _on_base(ctx: Ctx, train: TR.Train) -> bool:
    return git.is_ancestor(ctx.ws.root, train.tip, f"refs/heads/{train.base}")


def _merged(ctx: Ctx, train: TR.Train, slug: str, actor: Actor) -> None:
    from orch.workflow import dossier

    try:
        task = T.get(ctx, slug)
    except OrchError:
        return  # closed meanwhile
    if task.state == S.MERGED:
        return
    dossier.add_section(ctx, slug, "landed", lambda data: {
        "train": train.op, "base": train.base, "base_before": train.base_sha, "integration_sha": train.tip,
        "members": train.members, "validation": train.validation, "carried": train.carried.get(slug, "")})
    T.move(ctx, slug, S.MERGED, E.LANDED, actor, merged=f"{train.tip[:12]} on {train.base} (train {train.op})",
           status=f"merged: landed on {train.base} by train {train.op} at {train.tip[:12]} (validated there); "
                  f"`orch close {slug}` when you are done with it")


def _fail(ctx: Ctx, train: TR.Train, why: str) -> list[str]:
    train.state, train.finished = "failed", time.time()
    train.say(f"failed: {why}")
    TR.save(ctx, train)
    gitland.drop_scratch(ctx.ws.root, TR.scratch_path(ctx, train.op))
    ctx.event("land", f"train {train.op} failed: {why}")
    return _report(train)


def _report(train: TR.Train) -> list[str]:
    lines = [f"train {train.op}: {train.state}"]
    if train.state == "landed":
        lines.append(f"landed on {train.base} at {train.tip[:12]}: {', '.join(train.members)}")
    for slug, why in train.out.items():
        lines.append(f"not landed: {slug} - {why}")
    lines += [f"  {line}" for line in train.log]
    return lines


def resume(ctx: Ctx) -> list[str]:
    """A daemon's pass: trains whose base moved to their tip before orch was killed are recorded as landed (the
    rest wait for the person's `orch land`, which builds and validates them again)."""
    return [f"train {t.op} landed" for t in TR.unfinished(ctx) if t.state == "landing" and settle(ctx, t, PASS)]
