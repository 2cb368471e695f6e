"""What a task's pull request says, decided from plain data: the summary's short form, the next action in words,
whether every proof agrees on one head sha (ready), and the reactions due (a fix round's reasons).

``judge()`` is pure (tested on its own); workflow/forge.py gathers its inputs and carries its answer out. Reactions
are keyed so that each fires once: a failed check per (head sha, check), a review thread per its last comment, a
change request per review, a bot's comment per comment.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from orch.forge import Check, Pull
from orch.lifecycle import TaskState
from orch.record import dataclass, field

S = TaskState
JUDGED = frozenset({S.CHECKING, S.READY})  # the states in which the forge's word moves the task


@dataclass
class Rules:
    required: tuple[str, ...] = ()  # check names that must be green (empty: every check)
    bots: tuple[str, ...] = ()
    bot_severity: str = "minor"
    bot_timeout: float = 900.0
    check_wait: float = 0.0  # seconds a new head waits for its first checks (CI takes a moment to register them)
    interval: float = 0.0  # the forge's query interval: a bot may have spoken that long before orch saw the head


@dataclass
class Due:
    """One reaction: ``key`` and ``sha`` make it unique; ``reason`` goes to the coder (quoted)."""

    key: str
    sha: str
    kind: str  # check | thread | changes | bot
    reason: str
    blocking: bool = True
    check: Check | None = None  # a failed check: its log's tail is added to the reason


@dataclass
class Judgement:
    short: str  # the summary's `pr:` line
    next: str  # the recommended next action, in words
    ready: bool = False  # every proof agrees on the approved sha
    due: list[Due] = field(default_factory=list)  # reactions not sent before
    waits: list[str] = field(default_factory=list)  # what ready waits for
    upstream: str = ""  # "merged" | "closed": the PR ended upstream


def short_sha(sha: str) -> str:
    return sha[:7] if sha else "?"


def required_checks(pull: Pull, rules: Rules) -> tuple[list[Check], list[str]]:
    """The checks that count on the head, and the required names that have not reported."""
    if not rules.required:
        return pull.checks, []
    have = {c.name for c in pull.checks}
    return [c for c in pull.checks if c.name in rules.required], [n for n in rules.required if n not in have]


def bots_silent(pull: Pull, rules: Rules, seen_at: float, now: float) -> list[str]:
    """The configured bots that have not spoken on the head yet (none once ``bot_timeout`` has passed)."""
    if not rules.bots or (seen_at and now - seen_at >= rules.bot_timeout):
        return []
    spoke = {r.author for r in pull.reviews if r.sha == pull.head_sha}
    since = seen_at - rules.interval - 1  # (the head was pushed at most one query interval before orch saw it)
    for c in [*pull.comments, *(c for t in pull.threads for c in t.comments)]:
        if c.at and seen_at and _time(c.at) >= since:
            spoke.add(c.author)
    return [b for b in rules.bots if b not in spoke and b.removesuffix("[bot]") not in spoke]


def _time(iso: str) -> float:
    try:
        return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def _is_bot(author: str, rules: Rules) -> bool:
    """One of the configured review bots (another bot account's comments are a human's, for orch)."""
    return author in rules.bots or f"{author}[bot]" in rules.bots or author.removesuffix("[bot]") in rules.bots


def judge(slug: str, state: str, approved: str, pull: Pull | None, sent: Collection[tuple[str, str]], rules: Rules,
          seen_at: float = 0.0, now: float = 0.0, pushing: bool = False, ours: str = "") -> Judgement:
    """The PR of a task in ``state`` whose review approved ``approved`` (""), given the reactions already ``sent``
    ((key, sha) pairs). ``pushing``: orch publishes the branch itself (``pr`` on); ``ours``: the sha orch last
    pushed there (a head orch did not push is never replaced). ``seen_at``: when orch first saw the PR's head."""
    if pull is None:
        if state in JUDGED and pushing:
            return Judgement("no PR yet", "opening the pull request")
        return Judgement("", "")
    head = short_sha(pull.head_sha)
    if pull.state == "MERGED":
        return Judgement(f"PR #{pull.number} merged", f"merged upstream - `orch close {slug}` when you agree",
                         upstream="merged")
    if pull.state == "CLOSED":
        return Judgement(f"PR #{pull.number} closed", f"closed upstream without merging - `orch close {slug}`, or "
                         "reopen the pull request", upstream="closed")
    counted, missing = required_checks(pull, rules)
    failed = [c for c in counted if c.failed]
    noted = [c for c in pull.checks if c.failed and c not in counted]  # failing, not required: noted, no round
    pending = [c for c in counted if not c.done]
    green = [c for c in counted if c.green]
    threads = [t for t in pull.threads if t.open]
    changes = pull.change_requests()
    silent = bots_silent(pull, rules, seen_at, now)
    words = [f"PR #{pull.number}{' draft' if pull.draft else ''}"]
    words.append(f"checks {len(green)}/{len(counted) + len(missing)} green on {head}" if counted or missing
                 else f"no checks on {head}")
    if failed:
        words.append("failing: " + ", ".join(c.name for c in failed))
    if threads:
        words.append(f"{len(threads)} open thread(s)")
    if changes:
        words.append("changes requested by " + ", ".join("@" + r.author for r in changes))
    if pull.mergeable == "CONFLICTING":
        words.append("conflicts with " + (pull.base_ref or "its base"))
    short = ", ".join(words)
    if state not in JUDGED:
        return Judgement(short, _before_approval(state, failed, head))
    if approved and pull.head_sha != approved:
        # the proofs speak of two shas: nothing is sent about checks on a head the review did not see
        if pushing and pull.head_sha in (ours, ""):
            return Judgement(short, f"pushing the approved {short_sha(approved)} to the pull request (its head is "
                                    f"{head})", waits=["push"])
        if pushing:
            return Judgement(short, f"the pull request's head {head} was not pushed by orch and is not the approved "
                                    f"{short_sha(approved)}: bring its commits into the branch (a new review "
                                    f"follows), or `orch close {slug}`", waits=["same sha"])
        return Judgement(short, f"CI on {head}, review on {short_sha(approved)}: push the approved branch to the "
                                f"pull request, or bring the PR's commits into the branch (a new review follows)",
                         waits=["same sha"])
    due = [Due(f"check:{c.name}" + (f":{c.job_id}" if c.job_id else ""), pull.head_sha, "check",
               f"check `{c.name}` {c.conclusion} on {head}" + (f" ({c.url})" if c.url else ""), check=c,
               blocking=c not in noted) for c in [*failed, *noted]]
    for t in threads:
        first = t.comments[0] if t.comments else None
        bot = first is not None and _is_bot(first.author, rules)
        where = f"{t.path}:{t.line}" if t.line else t.path
        said = "\n".join(f"@{c.author}: {c.body}" for c in t.comments)
        severity = rules.bot_severity if bot else "blocker"
        due.append(Due(f"thread:{t.id}:{t.last}", "", "thread", f"{severity}: {where} review thread "
                       f"({t.comments[-1].url if t.comments else ''}):\n{said}", blocking=severity == "blocker"))
    for r in changes:
        due.append(Due(f"changes:{r.id}", "", "changes", f"blocker: @{r.author} requested changes ({r.url})"
                       + (f":\n{r.body}" if r.body else ""), blocking=True))
    for c in pull.comments:
        if _is_bot(c.author, rules) and c.body.strip():
            due.append(Due(f"bot:{c.id}", "", "bot", f"{rules.bot_severity}: @{c.author} commented ({c.url}):\n"
                           f"{c.body}", blocking=rules.bot_severity == "blocker"))
    due = [d for d in due if (d.key, d.sha) not in sent]
    waits = [f"{c.name} ({c.status})" for c in pending] + [f"{n} (not reported)" for n in missing]
    if not pull.checks and not rules.required and seen_at and now - seen_at < rules.check_wait:
        waits.append("its first checks")  # (CI registers its checks a moment after a push)
    waits += [f"@{b} to speak" for b in silent]
    humans = [t for t in threads if not (t.comments and _is_bot(t.comments[0].author, rules))]
    if humans:
        waits.append(f"{len(humans)} open review thread(s) to be resolved")
    if changes:
        waits.append("the change request")
    conflicting = pull.mergeable == "CONFLICTING"
    ready = not failed and not waits and not conflicting and not any(d.blocking for d in due)
    if failed:
        nxt = f"CI failing: {', '.join(c.name for c in failed)} on {head}"
    elif changes:
        nxt = f"changes requested by {', '.join('@' + r.author for r in changes)}"
    elif any(d.blocking for d in due):
        nxt = f"{sum(1 for d in due if d.blocking)} open review thread(s)"
    elif conflicting:
        nxt = f"conflicts with {pull.base_ref or 'its base'}: rebase the branch, then `orch retry {slug}`"
    elif waits:
        nxt = "waiting for " + ", ".join(waits)
    elif pull.review_decision == "REVIEW_REQUIRED":
        nxt = f"ready on {head}; waiting for a human review"
    else:
        nxt = f"ready on {head}: review, validation and CI agree - yours to land"
    return Judgement(short, nxt, ready, due, waits)


def _before_approval(state: str, failed: list[Check], head: str) -> str:
    """The next action of a task still in the coder's hands or in orch's review loop (the PR is judged once orch's
    own review approves the branch)."""
    ci = f" (CI on {head}: {', '.join(c.name for c in failed)} failing)" if failed else ""
    return f"{state}: the coder's work and orch's review come before the pull request's{ci}"
