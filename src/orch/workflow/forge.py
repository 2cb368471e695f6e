"""The forge in the pass: every task's pull request read in one request, judged (workflow/judge.py) and acted on.

Once per ``forge.interval`` (or at once when a task was just approved), the pass:
1. publishes approved work where orch opens PRs (``pr = "draft" | "ready"``): pushes the approved sha and opens the
   PR with the dossier as its body;
2. asks the forge for every open task's PR in one request (a rate limit is waited out: nothing is asked before its
   reset);
3. keeps each PR's view (``orch check``, ``orch status``), writes the summary's ``pr state`` and ``next`` lines (a
   status line only when they changed), and moves the task: a failed check, an open review thread or a change
   request becomes a fix round (each once), agreement on the approved sha makes it ready.
orch never merges or closes a PR; a PR merged or closed upstream is reported with the suggestion to close the task.
"""

from __future__ import annotations

import time

from orch import forge as F
from orch import gh, git
from orch.errors import OrchError
from orch.lifecycle import Actor, TaskEvent, TaskState
from orch.store import PullRow, Reaction, TaskRow
from orch.workflow import judge as J
from orch.workflow import tasks as T
from orch.workflow import train as TR
from orch.workflow.context import Ctx

S, E, PASS = TaskState, TaskEvent, Actor.PASS
WATCHED = frozenset(s for s in S if s not in (S.QUEUED, S.DONE))
BODY_MAX = 60_000  # characters of a PR's body (GitHub takes 65,536)
DUE = "due"  # forge_meta: a task was approved: the next pass asks at once


def repo_for(ctx: Ctx, rows: dict[str, TaskRow]) -> str:
    """The repository whose PRs orch watches ("" when the forge is not used): ``[forge] repo``, else the remote's
    (when orch opens PRs, or a task named a PR of that repository). Never a host a worker's message named: the
    person's token goes only where the person's configuration points."""
    cfg = ctx.cfg.forge
    if cfg.repo:
        return cfg.repo
    remote = F.repo_of(git.remote_url(ctx.ws.root, cfg.remote) or "")
    if not remote:
        return ""
    if cfg.pr != "off" or any(_same_repo(row.fields.get("pr", ""), remote) for row in rows.values()):
        return remote
    return ""


def _same_repo(url: str, repo: str) -> bool:
    """Is ``url`` a PR of ``repo`` (``host/owner/name`` or ``owner/name``)?"""
    found = F.repo_of(url)
    if not found or not F.number_of(url):
        return False
    return found == repo or (repo.count("/") == 1 and found == f"github.com/{repo}")


def backend(ctx: Ctx, repo: str) -> F.Forge:
    found = ctx.__dict__.get("forge")  # (a test's own forge)
    if found is not None:
        return found
    from orch.forge.github import GitHub

    return GitHub(repo)


def rules(ctx: Ctx) -> J.Rules:
    cfg = ctx.cfg.forge
    return J.Rules(tuple(cfg.required_checks), tuple(cfg.bots), cfg.bot_severity, cfg.bot_timeout, cfg.check_wait,
                   cfg.interval)


def watches(ctx: Ctx, task: T.Task) -> bool:
    """Does the forge have a say in this task's readiness (orch opens PRs, or the pass found the task's PR)?"""
    return ctx.cfg.forge.pr != "off" or ctx.store.pull(task.slug) is not None


def mark_due(ctx: Ctx) -> None:
    ctx.store.set_forge_meta(**{DUE: "1"})


def step(ctx: Ctx, force: bool = False) -> list[str]:
    """The forge's part of a pass; returns what it did (for the scan report)."""
    rows = {slug: row for slug, row in ctx.store.task_rows().items() if row.state in WATCHED}
    if not rows:
        return []
    repo = repo_for(ctx, rows)
    if not repo:
        return []
    meta = ctx.store.forge_meta()
    now = time.time()
    until = float(meta.get("wait_until", 0) or 0)
    if now < until:
        return []
    if not (force or meta.get(DUE) or now - float(meta.get("asked_at", 0) or 0) >= ctx.cfg.forge.interval):
        return []
    forge = backend(ctx, repo)
    did: list[str] = []
    for slug, row in rows.items():
        if row.state == S.CHECKING and ctx.cfg.forge.pr != "off":
            did += _publish(ctx, forge, slug, row)
    wants = [F.Want(slug, _number(row, repo), row.meta.get("branch") or ctx.cfg.branch_prefix + slug)
             for slug, row in rows.items()]
    try:
        pulls, budget = forge.pulls(wants)
    except gh.RateLimited as exc:
        ctx.store.set_forge_meta(wait_until=exc.until, asked_at=now, problem=str(exc))
        ctx.event("forge", f"{exc}: nothing is asked before {time.strftime('%H:%M:%S', time.localtime(exc.until))}")
        return [f"forge: rate limited until {time.strftime('%H:%M:%S', time.localtime(exc.until))}"]
    except OrchError as exc:
        ctx.store.set_forge_meta(asked_at=now, problem=str(exc), **{DUE: None})
        if meta.get("problem") != str(exc):
            ctx.event("forge", str(exc))
        return [f"forge: {exc}"]
    ctx.store.set_forge_meta(asked_at=now, problem=None, wait_until=None, remaining=budget.remaining,
                             limit=budget.limit, reset_at=budget.reset_at, **{DUE: None})
    known = ctx.store.pulls()
    for slug, row in rows.items():
        pull = pulls.get(slug)
        try:
            did += _carry(ctx, forge, slug, row, pull, known.get(slug), now)
        except OrchError as exc:
            ctx.event("forge", f"{slug}: {exc}", task=slug)
            did.append(f"{slug}: {exc}")
    return did


def _number(row: TaskRow, repo: str) -> int:
    url = row.fields.get("pr", "")
    return F.number_of(url) if _same_repo(url, repo) else 0


def _publish(ctx: Ctx, forge: F.Forge, slug: str, row: TaskRow) -> list[str]:
    """An approved task where orch opens PRs: the approved sha pushed, and its PR opened when it has none."""
    approved = row.fields.get("approved", "")
    if not approved:
        return []
    cfg = ctx.cfg.forge
    branch = row.meta.get("branch") or ctx.cfg.branch_prefix + slug
    meta = ctx.store.forge_meta()
    pushed = meta.get(f"pushed:{slug}", "")
    known = ctx.store.pull(slug)
    if known is not None and known.head_sha not in (approved, pushed, ""):
        return []  # a head orch did not push: never replaced (the summary says what to do)
    try:
        if pushed != approved and not (known and known.head_sha == approved):
            # a fast-forward, or a replacement of what orch itself pushed there (and nothing else)
            git.push(ctx.ws.root, cfg.remote, approved, branch, expect=pushed or None)
            ctx.store.set_forge_meta(**{f"pushed:{slug}": approved})
            T.record(ctx, slug, status=f"pushed {approved[:12]} to {cfg.remote}/{branch}")
        if known is None and not row.fields.get("pr"):
            task = T.get(ctx, slug)
            body = _dossier_text(row.fields.get("dossier", ""))
            base = row.meta.get("base") or _base_branch(ctx, task)
            opened = forge.open_pull(branch, base, _title(task), body, draft=cfg.pr == "draft")
            T.record(ctx, slug, status=f"pull request #{opened.number} opened{' as a draft' if cfg.pr == 'draft' else ''}: "
                                       f"{opened.url}", pr=opened.url)
            return [f"{slug}: pull request #{opened.number} opened"]
    except OrchError as exc:
        problem = f"could not publish the approved branch: {exc}"
        if row.fields.get("problem") != T.taskfile.one_line(problem):
            T.record(ctx, slug, status=problem, problem=problem)
        return [f"{slug}: {problem}"]
    return []


def _title(task: T.Task) -> str:
    """The PR's title: the task's first line of text (a heading's words), or its name."""
    for line in task.body.splitlines():
        words = line.strip().lstrip("#").strip()
        if words and words != "---":
            return words[:120]
    return task.slug


def _base_branch(ctx: Ctx, task: T.Task) -> str:
    from orch.workflow import spawn

    base = spawn.resolve_base(ctx, task)
    return base.split("/", 1)[1] if base.startswith(f"{ctx.cfg.forge.remote}/") else base


def _dossier_text(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError:
        return "(the dossier could not be read)"
    return text if len(text) <= BODY_MAX else text[:BODY_MAX] + "\n\n(the dossier goes on in .orch/dossiers)"


def _carry(ctx: Ctx, forge: F.Forge, slug: str, row: TaskRow, pull: F.Pull | None, known: PullRow | None,
           now: float) -> list[str]:
    """One task's PR, as just read: kept, judged, acted on."""
    if pull is None:
        if known is not None:
            ctx.store.drop_pull(slug)
        if row.state == S.CHECKING and ctx.cfg.forge.pr == "off":  # its PR is gone: the review alone decides
            T.move(ctx, slug, S.READY, E.FORGE_AGREES, PASS, status="merge-ready: no pull request of the branch any "
                   "more; validation and review agree (nothing merged)", pr_state=None, next=None)
            return [f"{slug}: ready (no pull request any more)"]
        return []
    heads = dict(known.heads) if known else {}
    heads.setdefault(pull.head_sha, now)
    ctx.store.put_pull(PullRow(slug, pull.number, pull.url, pull.state, pull.head_sha, F.as_dict(pull), heads, now))
    sent = {(r.key, r.sha) for r in ctx.store.reactions(slug)}
    verdict = J.judge(slug, row.state, row.fields.get("approved", ""), pull, sent, rules(ctx), heads[pull.head_sha],
                      now, pushing=ctx.cfg.forge.pr != "off",
                      ours=ctx.store.forge_meta().get(f"pushed:{slug}", ""))
    fields: dict[str, str | None] = {"pr_state": verdict.short, "next": verdict.next}
    if row.fields.get("pr") != pull.url:
        fields["pr"] = pull.url
    changed = row.fields.get("pr state") != verdict.short
    status = f"{verdict.short}: {verdict.next}" if changed else None
    did: list[str] = []
    if verdict.upstream == "merged" and row.state == S.READY and row.fields.get("handed"):
        if T.move(ctx, slug, S.MERGED, E.LANDED, PASS, summary=fields,
                  merged=f"pull request #{pull.number} (train {row.fields['handed']}, auto-merge)",
                  status=f"merged: pull request #{pull.number} was merged by the forge (handed over by train "
                         f"{row.fields['handed']}); `orch close {slug}` when you are done with it"):
            return [f"{slug}: merged by the forge"]
    if row.state in J.JUDGED and not verdict.upstream:  # (a PR merged or closed upstream moves nothing)
        blocking = [d for d in verdict.due if d.blocking]
        if blocking:
            return did + _round(ctx, forge, slug, row, verdict, fields)
        if verdict.due:  # findings that block nothing (a bot's minor comment): noted once, listed in the dossier
            ctx.store.react([Reaction(slug, d.key, d.sha, d.kind, 0, d.reason, now) for d in verdict.due])
        if verdict.ready and row.state == S.CHECKING:
            if T.move(ctx, slug, S.READY, E.FORGE_AGREES, PASS,
                      status=f"merge-ready on {pull.head_sha[:12]}: local validation, review and the pull request "
                             f"#{pull.number} agree (nothing merged)", summary=fields):
                _dossier(ctx, slug, pull)
                return [f"{slug}: ready (pull request #{pull.number} agrees)"]
        if not verdict.ready and row.state == S.READY:
            if T.move(ctx, slug, S.CHECKING, E.FORGE_PENDING, PASS,
                      status=f"{verdict.short}: {verdict.next}", summary=fields):
                return [f"{slug}: checking again ({verdict.next})"]
    if T.record(ctx, slug, status=status, summary=fields) and changed:
        did.append(f"{slug}: {verdict.short}")
        if row.state in J.JUDGED:
            _dossier(ctx, slug, pull)
    return did


def hand_over(ctx: Ctx, train: TR.Train) -> list[str]:
    """A train handed to the forge (``[land] via = "forge"``): each member's PR, at its approved sha, gets the
    forge's auto-merge; the forge merges it once the repository's own rules are met, and a pass then finds it
    merged. A member without a PR at its approved sha is not handed over."""
    rows = ctx.store.task_rows()
    repo = repo_for(ctx, rows)
    if not repo:
        raise OrchError('[land] via = "forge" needs the forge: set [forge] repo (or pr) in .orch/config.toml')
    forge = backend(ctx, repo)
    method = "rebase" if train.method == "rebase" else "merge"
    handed = []
    for slug in list(train.members):
        row = ctx.store.pull(slug)
        if row is None or row.head_sha != train.approved[slug]:
            why = "no pull request at its approved sha" if row is None or row.state == "OPEN" else f"its PR is {row.state.lower()}"
            train.members.remove(slug)
            train.out[slug] = why
            train.say(f"{slug} not handed over: {why}")
            continue
        try:
            forge.auto_merge(F.pull_from(row.data), method)
        except OrchError as exc:
            train.members.remove(slug)
            train.out[slug] = str(exc)
            train.say(f"{slug} not handed over: {exc}")
            continue
        handed.append(slug)
        train.say(f"{slug}: auto-merge ({method}) asked on pull request #{row.number}")
        T.record(ctx, slug, status=f"handed to the forge by train {train.op}: auto-merge ({method}) on pull request "
                                   f"#{row.number}; merged when the repository's rules are met", handed=train.op)
    train.state = "handed" if handed else "failed"
    train.finished = time.time()
    TR.save(ctx, train)
    lines = [f"train {train.op}: {train.state}"]
    if handed:
        lines.append(f"handed to the forge (auto-merge): {', '.join(handed)}")
    lines += [f"not handed over: {slug} - {why}" for slug, why in train.out.items()]
    if not handed:
        lines.append("  failed: no member could be handed over")
    return lines


def _round(ctx: Ctx, forge: F.Forge, slug: str, row: TaskRow, verdict: J.Judgement,
           fields: dict[str, str | None]) -> list[str]:
    """A fix round from the forge: its reasons recorded as reactions (each sent once), then typed to the coder (or
    queued while it works or a person is attached), or the task blocked when the forge's rounds ran out."""
    from orch.workflow import prompts, review

    task = T.get(ctx, slug)
    used = int(task.field("forge rounds") or 0) + 1
    limit = ctx.cfg.forge.max_rounds
    new_round = review.round_of(task) + 1
    reasons: list[str] = []
    suggestions: list[str] = []
    for d in verdict.due:
        text = d.reason
        if d.check is not None:
            text += _log_tail(ctx, forge, d.check)
        (reasons if d.blocking else suggestions).append(text)
    heads = ", ".join(r.split("\n")[0] for r in reasons)
    now = time.time()
    if used > limit:
        if T.move(ctx, slug, S.BLOCKED, E.OUT_OF_ROUNDS, PASS,
                  status=f"blocked: {limit} fix round(s) from the pull request without agreement; open: {heads}; "
                         f"`orch retry {slug}` gives it more rounds",
                  blocked=f"{limit} forge round(s) without agreement", open_blockers=heads, summary=fields):
            ctx.store.react([Reaction(slug, d.key, d.sha, d.kind, 0, d.reason, now) for d in verdict.due])
        return [f"{slug}: blocked after {limit} forge rounds"]
    budget = max(review.round_budget(ctx, task), new_round) + 1  # (the review loop keeps its own rounds)
    text = prompts.fix_prompt(slug, new_round, reasons, suggestions, budget, prompts.orch_command(ctx),
                              source="the pull request (its CI, reviewers and bots)")
    fields["next"] = f"{verdict.next} - fix round {new_round} sent"
    # the state is written before anything is typed (the coder may answer at once); then the reactions, each once
    if not T.move(ctx, slug, S.FIXING, E.FORGE_ROUND, PASS,
                  status=f"sent back to the coder for round {new_round} (the pull request): {heads}",
                  round=str(new_round), round_budget=str(budget), forge_rounds=str(used), summary=fields):
        return []
    ctx.store.react([Reaction(slug, d.key, d.sha, d.kind, new_round, d.reason, now) for d in verdict.due])
    review.deliver_to_coder(ctx, task, text, new_round, ctx.panes())
    return [f"{slug}: round {new_round} (the pull request: {heads})"]


def _log_tail(ctx: Ctx, forge: F.Forge, check: F.Check) -> str:
    """The last lines of a failed job's log, for the coder (empty when the forge keeps none)."""
    try:
        log = forge.job_log(check)
    except OrchError as exc:
        return f"\n(its log could not be read: {exc})"
    lines = [line.split(" ", 1)[1] if _stamped(line) else line for line in log.rstrip("\n").split("\n")]
    if not log.strip():
        return ""
    n = ctx.cfg.forge.log_lines
    return f"\nthe last {min(n, len(lines))} lines of its log:\n" + "\n".join(lines[-n:])


def _stamped(line: str) -> bool:
    """A line of a GitHub Actions log starts with its time stamp (``2026-12-01T10:00:00.1234567Z ...``)."""
    return len(line) > 28 and line[4] == "-" and line[10] == "T" and " " in line[:32]


def _dossier(ctx: Ctx, slug: str, pull: F.Pull) -> None:
    from orch.workflow import dossier

    dossier.add_pull_request(ctx, slug, pull, ctx.store.reactions(slug))
