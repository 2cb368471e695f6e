"""The forge's parts: judge() on plain PR records, gh's answer parsing and rate limits, PR URLs; a pass without
`gh` on the bench."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from orch import gh
from orch.forge import Check, Comment, Pull, PullReview, Thread, as_dict, number_of, pull_from, repo_of
from orch.workflow.judge import Rules, judge
from tests.kit.fakes import Bench

SHA = "a" * 40


def pull(**kw: object) -> Pull:
    base = {"number": 7, "url": "https://github.com/o/n/pull/7", "state": "OPEN", "head_ref": "orch/t", "head_sha": SHA}
    return Pull(**{**base, **kw})  # type: ignore[arg-type]


def test_green_on_the_approved_sha_is_ready() -> None:
    j = judge("t", "checking", SHA, pull(checks=[Check("tests", SHA, conclusion="success")]), set(), Rules())
    assert j.ready and not j.due and j.short == "PR #7, checks 1/1 green on aaaaaaa"
    assert j.next == "ready on aaaaaaa: review, validation and CI agree - yours to land"


def test_a_failed_check_is_due_once_per_sha() -> None:
    p = pull(checks=[Check("tests", SHA, conclusion="failure", url="https://ci/1", job_id=3)])
    j = judge("t", "checking", SHA, p, set(), Rules())
    assert not j.ready and [(d.key, d.sha, d.kind, d.blocking) for d in j.due] == [("check:tests:3", SHA, "check",
                                                                                     True)]
    assert j.next == "CI failing: tests on aaaaaaa"
    again = judge("t", "checking", SHA, p, {("check:tests:3", SHA)}, Rules())
    assert again.due == [] and not again.ready
    p.checks[0].job_id = 4  # a re-run of the check on the same sha: a new run, said again
    assert [d.key for d in judge("t", "checking", SHA, p, {("check:tests:3", SHA)}, Rules()).due] == ["check:tests:4"]


def test_a_failing_check_that_is_not_required_is_noted_not_a_round() -> None:
    p = pull(checks=[Check("tests", SHA, conclusion="success"), Check("coverage", SHA, conclusion="failure")])
    j = judge("t", "checking", SHA, p, set(), Rules(required=("tests",)))
    assert j.ready and [(d.key, d.blocking) for d in j.due] == [("check:coverage", False)]


def test_a_new_head_without_checks_waits_for_them_a_while() -> None:
    rules = Rules(check_wait=120)
    assert judge("t", "checking", SHA, pull(), set(), rules, seen_at=1000.0, now=1010.0).waits == ["its first checks"]
    assert judge("t", "checking", SHA, pull(), set(), rules, seen_at=1000.0, now=1200.0).ready  # a repo without CI


def test_a_head_orch_did_not_push_is_never_replaced() -> None:
    theirs = pull(head_sha="d" * 40)
    j = judge("t", "checking", SHA, theirs, set(), Rules(), pushing=True, ours="e" * 40)
    assert not j.ready and "was not pushed by orch" in j.next
    assert judge("t", "checking", SHA, theirs, set(), Rules(), pushing=True, ours="d" * 40).next.startswith("pushing")


def test_pending_and_missing_required_checks_wait() -> None:
    p = pull(checks=[Check("tests", SHA, status="in_progress"), Check("docs", SHA, conclusion="failure")])
    j = judge("t", "checking", SHA, p, {("check:docs", SHA)}, Rules(required=("tests", "lint")))
    assert not j.ready and j.waits == ["tests (in_progress)", "lint (not reported)"]


def test_two_shas_are_said_plainly_and_nothing_is_sent() -> None:
    p = pull(head_sha="b" * 40, checks=[Check("tests", "b" * 40, conclusion="failure")])
    j = judge("t", "checking", SHA, p, set(), Rules())
    assert not j.ready and j.due == []
    assert j.next.startswith("CI on bbbbbbb, review on aaaaaaa: push the approved branch")
    assert judge("t", "checking", SHA, p, set(), Rules(), pushing=True, ours="b" * 40).next.startswith(
        "pushing the approved aaaaaaa")


def test_threads_change_requests_and_bots() -> None:
    human = Thread("T1", "src/a.py", 4, False, False, [Comment("c1", "alice", False, "rename this")])
    done = Thread("T2", "src/a.py", 9, True, False, [Comment("c2", "alice", False, "ok")])
    bot_thread = Thread("T3", "src/b.py", 1, False, False, [Comment("c3", "lint-bot", True, "nit")])
    reviews = [PullReview("R1", "bob", False, "CHANGES_REQUESTED", SHA, "no"),
               PullReview("R2", "carol", False, "CHANGES_REQUESTED", SHA),
               PullReview("R3", "carol", False, "APPROVED", SHA)]
    p = pull(threads=[human, done, bot_thread], reviews=reviews)
    j = judge("t", "checking", SHA, p, set(), Rules(bots=("lint-bot",)))
    keys = [(d.key, d.blocking) for d in j.due]
    assert keys == [("thread:T1:c1", True), ("thread:T3:c3", False), ("changes:R1", True)]
    assert j.due[0].reason.startswith("blocker: src/a.py:4 review thread")
    assert "@alice: rename this" in j.due[0].reason and j.due[1].reason.startswith("minor: src/b.py:1")
    assert not j.ready and "the change request" in j.waits
    assert "1 open review thread(s) to be resolved" in j.waits  # a human's thread blocks ready until resolved
    # a thread is said again only when someone adds to it
    sent = {(d.key, d.sha) for d in j.due}
    assert judge("t", "checking", SHA, p, sent, Rules(bots=("lint-bot",))).due == []
    human.comments.append(Comment("c4", "alice", False, "still?"))
    assert [d.key for d in judge("t", "checking", SHA, p, sent, Rules(bots=("lint-bot",))).due] == ["thread:T1:c4"]
    # a bot account that is not configured is a human to orch (its thread blocks, its comments are not findings)
    assert [d.key for d in judge("t", "checking", SHA, p, set(), Rules()).due][:2] == ["thread:T1:c4", "thread:T3:c3"]
    assert all(d.blocking for d in judge("t", "checking", SHA, p, set(), Rules()).due)


def test_a_configured_bot_must_speak_on_the_head_or_time_out() -> None:
    p = pull(checks=[Check("tests", SHA, conclusion="success")])
    rules = Rules(bots=("lint-bot[bot]",), bot_timeout=600)
    waiting = judge("t", "checking", SHA, p, set(), rules, seen_at=1000.0, now=1100.0)
    assert not waiting.ready and waiting.waits == ["@lint-bot[bot] to speak"]
    assert judge("t", "checking", SHA, p, set(), rules, seen_at=1000.0, now=1700.0).ready  # timed out
    p.reviews.append(PullReview("R", "lint-bot", True, "COMMENTED", SHA))
    assert judge("t", "checking", SHA, p, set(), rules, seen_at=1000.0, now=1100.0).ready
    p.reviews[0] = PullReview("R", "lint-bot", True, "COMMENTED", "c" * 40)  # on another sha: not spoken
    assert not judge("t", "checking", SHA, p, set(), rules, seen_at=1000.0, now=1100.0).ready


def test_upstream_ends_and_tasks_before_approval() -> None:
    merged = judge("t", "ready", SHA, pull(state="MERGED"), set(), Rules())
    assert merged.upstream == "merged" and merged.next == "merged upstream - `orch close t` when you agree"
    closed = judge("t", "checking", SHA, pull(state="CLOSED"), set(), Rules())
    assert closed.upstream == "closed" and not closed.ready
    coding = judge("t", "coding", "", pull(checks=[Check("tests", SHA, conclusion="failure")]), set(), Rules())
    assert coding.due == [] and "(CI on aaaaaaa: tests failing)" in coding.next
    assert judge("t", "checking", SHA, None, set(), Rules(), pushing=True).next == "opening the pull request"
    conflicting = judge("t", "checking", SHA, pull(mergeable="CONFLICTING", base_ref="main"), set(), Rules())
    assert not conflicting.ready and conflicting.next.startswith("conflicts with main: rebase")


def test_a_pull_survives_the_store() -> None:
    p = pull(checks=[Check("t", SHA, conclusion="success")], threads=[Thread("T", "a", 1, False, False,
                                                                            [Comment("c", "x", False, "y")])],
             reviews=[PullReview("R", "b", False, "APPROVED", SHA)], comments=[Comment("k", "z", True, "w")])
    assert pull_from(as_dict(p)) == p


def test_urls() -> None:
    assert number_of("https://github.com/o/n/pull/12") == 12 and number_of("https://github.com/o/n") == 0
    assert repo_of("https://github.com/o/n/pull/12") == "github.com/o/n"
    assert repo_of("git@github.com:o/n.git") == "github.com/o/n"
    assert repo_of("https://user@ghe.example.com/o/n.git") == "ghe.example.com/o/n"
    assert repo_of("/srv/git/n.git") == ""


def test_gh_answers_and_rate_limits() -> None:
    a = gh.parse(b"HTTP/2.0 403 Forbidden\r\nX-Ratelimit-Remaining: 0\r\nX-Ratelimit-Reset: 2000\r\n\r\n"
                 b'{"message": "API rate limit exceeded"}')
    assert a is not None and a.status == 403 and a.message() == "API rate limit exceeded"
    assert gh.rate_limited(a, now=1000.0) == 2000.0
    retry = gh.Answer(429, {"retry-after": "30"}, b"{}")
    assert gh.rate_limited(retry, now=1000.0) == 1030.0
    assert gh.rate_limited(gh.Answer(403, {}, b'{"message": "Resource not accessible"}'), now=1.0) is None
    assert gh.parse(b"error connecting to api.github.com") is None
    ok = gh.parse(b"HTTP/1.1 200 OK\nX-Ratelimit-Remaining: 10\nX-Ratelimit-Limit: 5000\nX-Ratelimit-Reset: 9\n\n{}")
    assert ok is not None and gh.budget(ok) == (10, 5000, 9.0)


def test_without_gh_the_pass_says_so_in_one_line_once(bench: Bench, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from orch import config
    from orch.workflow import checker

    only_git = tmp_path / "bin"
    only_git.mkdir()
    (only_git / "git").symlink_to(shutil.which("git") or "/usr/bin/git")
    monkeypatch.setenv("PATH", str(only_git))
    path = Path(bench.ctx.ws.config_file)
    path.write_text(path.read_text().replace("\n[forge]\n", '\n[forge]\nrepo = "acme/widget"\ninterval = 3600\n'))
    bench.ctx.cfg = config.load(bench.ctx.ws)
    bench.put("t", "coding")
    bench.start("t")
    report = bench.scan()
    assert report.forge == [f"forge: {gh.MISSING}"] and "\n" not in gh.MISSING
    assert checker.forge_view(bench.ctx)["problem"] == gh.MISSING
    assert bench.scan().forge == []  # not asked again before the interval
    assert len(bench.events("forge")) == 1
