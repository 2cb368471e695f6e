"""Many hosts, the pure parts: placement, the host's config, report ordering, and the workspace applying reports
(each once, whatever the order and the repeats) on the bench."""

from __future__ import annotations

from pathlib import Path

import pytest

from orch.fleet import Host, Want, host_config, place, resume_note, snapshot_newer
from tests.kit.fakes import Bench

NOW = 1000.0


def hosts(*specs: tuple[str, tuple[str, ...], int, float]) -> list[Host]:
    return [Host(name, labels, places, seen) for name, labels, places, seen in specs]


def test_a_task_goes_to_the_live_host_with_the_most_free_places() -> None:
    hs = hosts(("a", (), 2, NOW), ("b", (), 4, NOW))
    assert place(Want("t"), hs, {"x": "b", "y": "b"}, NOW, 10) == ("a", "")  # a: 2 free, b: 2 free -> by name
    assert place(Want("t"), hs, {"x": "a"}, NOW, 10) == ("b", "")


def test_labels_the_task_needs_and_hosts_kept_for_the_tasks_that_need_theirs() -> None:
    hs = hosts(("gpu", ("gpu",), 1, NOW), ("plain", (), 1, NOW))
    assert place(Want("t", needs=("gpu",)), hs, {}, NOW, 10) == ("gpu", "")
    assert place(Want("t"), hs, {}, NOW, 10) == ("plain", "")  # the gpu host is kept while another has room
    assert place(Want("t"), hs, {"x": "plain"}, NOW, 10) == ("gpu", "")  # ... but used when it is the only room
    assert place(Want("t", needs=("tpu",)), hs, {}, NOW, 10) == ("", "no live host has the labels tpu")


def test_a_named_host_full_or_dead_makes_the_task_wait_and_says_why() -> None:
    hs = hosts(("a", (), 1, NOW), ("old", (), 4, NOW - 60))
    assert place(Want("t", host="a"), hs, {}, NOW, 10) == ("a", "")
    assert place(Want("t", host="a"), hs, {"x": "a"}, NOW, 10) == ("", "host a is full (1/1)")
    assert place(Want("t", host="old"), hs, {}, NOW, 10)[1].startswith("host old is not live")
    assert place(Want("t", host="zz"), hs, {}, NOW, 10) == ("", "host zz has never joined the cluster")
    assert place(Want("t"), [], {}, NOW, 10)[1].startswith("no host has joined")
    assert place(Want("t"), hosts(("a", (), 1, NOW)), {"x": "a"}, NOW, 10) == ("", "every host that fits is full")


def test_a_dead_host_is_not_chosen_and_a_host_that_lost_the_task_is_avoided() -> None:
    hs = hosts(("a", (), 4, NOW - 30), ("b", (), 4, NOW), ("c", (), 4, NOW))
    assert place(Want("t"), hs, {}, NOW, 10) == ("b", "")
    assert place(Want("t", avoid=("b",)), hs, {}, NOW, 10) == ("c", "")
    assert place(Want("t", avoid=("b", "c")), hs, {}, NOW, 10) == ("", "the only hosts that fit lost this task before")


def test_a_task_keeps_the_live_host_it_holds() -> None:
    hs = hosts(("a", (), 1, NOW), ("b", (), 9, NOW))
    assert place(Want("t"), hs, {"t": "a"}, NOW, 10) == ("a", "")  # asked again: the same answer, no second place
    assert place(Want("t", avoid=("a",)), hs, {"t": "a"}, NOW, 10) == ("b", "")


def test_a_task_goes_only_to_hosts_that_speak_the_workspaces_protocol() -> None:
    old, new = Host("old", (), 4, NOW, version="0.9", protocol=1), Host("new", (), 1, NOW, protocol=2)
    assert place(Want("t", protocol=2), [old, new], {}, NOW, 10) == ("new", "")  # though old has more room
    assert place(Want("t", protocol=2), [old, new], {"x": "new"}, NOW, 10) == ("", "every host that fits is full")
    assert place(Want("t", protocol=2), [old], {}, NOW, 10) == (
        "", "the live hosts that fit run another orch than the workspace: upgrade them")
    assert place(Want("t", host="old", protocol=2), [old, new], {}, NOW, 10) == (
        "", "host old runs another orch (0.9): upgrade it")
    assert place(Want("t"), [old], {}, NOW, 10) == ("old", "")  # (a workspace that says nothing: any)


def test_a_round_goes_to_the_host_with_the_tasks_copy_while_it_is_live() -> None:
    hs = hosts(("a", (), 1, NOW), ("b", (), 4, NOW), ("gone", (), 4, NOW - 60))
    assert place(Want("t", prefer="a"), hs, {"x": "a"}, NOW, 10) == ("a", "")  # full, but its coder is there already
    assert place(Want("t", prefer="gone"), hs, {}, NOW, 10) == ("b", "")  # its host is gone: as any task
    assert place(Want("t", prefer="a", avoid=("a",)), hs, {}, NOW, 10) == ("b", "")  # (a lost it since)


def test_a_rounds_request_reaches_a_coder_that_starts_from_the_pushed_work() -> None:
    from orch.fleet import round_note

    note = round_note("round 3: the PR's check `lint` failed:\n  E501 line too long\n")
    assert note.startswith("\n\n---\nNote from orch: the workspace sent this round's request")
    assert note.endswith("round 3: the PR's check `lint` failed:\n  E501 line too long\n")


def test_records_travel_as_plain_dicts() -> None:
    h = Host("a", ("gpu", "big"), 3, 12.5, "me@a", "/srv/repo", "orch-host-a", 2, "1.0", 2)
    assert Host.from_dict(h.as_dict()) == h
    w = Want("t", "a", ("gpu",), ("b",), 2, "a")
    assert Want.from_dict(w.as_dict()) == w


def test_the_hosts_config_drops_the_workspaces_own_tables_and_sets_its_base_and_server() -> None:
    text = ('base = "develop"\ndefault_agent = "scripted"\ncluster.address = "x:1"\n[cluster]\naddress = "a:1"\n'
            '[validate]\ncommands = ["make test"]\n[forge]\npr = "draft"\n[land]\nmethod = "rebase"\n'
            '[tmux]\nsocket = "mine"\n[agents.x]\ncommand = ["x"]\nbase = "kept: a key of a table"\n')
    out = host_config(text, "refs/remotes/origin/develop", "orch-host-a")
    assert out == ('base = "refs/remotes/origin/develop"\ndefault_agent = "scripted"\n[validate]\n'
                   'commands = ["make test"]\n[agents.x]\ncommand = ["x"]\nbase = "kept: a key of a table"\n\n'
                   '[tmux]\nsocket = "orch-host-a"\n')
    import tomllib

    assert tomllib.loads(out)["tmux"]["socket"] == "orch-host-a"


def test_reports_are_ordered_by_run_then_seq() -> None:
    assert snapshot_newer(None, {"run": 1, "seq": 0})
    assert snapshot_newer({"run": 1, "seq": 3}, {"run": 1, "seq": 4})
    assert not snapshot_newer({"run": 1, "seq": 4}, {"run": 1, "seq": 4})
    assert snapshot_newer({"run": 1, "seq": 9}, {"run": 2, "seq": 1})
    assert not snapshot_newer({"run": 2, "seq": 1}, {"run": 1, "seq": 9})


def test_the_resume_note_says_where_the_work_came_from() -> None:
    note = resume_note("h1", "abc123 a\n")
    assert "host h1, which was lost" in note and "abc123 a" in note
    assert "(no commits yet)" in resume_note("", "")


# -- the workspace applying reports --------------------------------------------------------------------------------


def report(seq: int, state: str, lines: list[str], run: int = 1, host: str = "h1") -> dict:
    return {"slug": "t", "kind": "report", "workflow": "w", "host": host, "run": run, "seq": seq, "state": state,
            "summary": [f"state: {state}", "round: 1", "worktree: /elsewhere/.worktree/t"], "head": "",
            "status": [f"- 2026-12-02T10:00:0{i}Z {text}" for i, text in enumerate(lines)]}


@pytest.fixture
def placed(bench: Bench) -> Bench:
    from orch.workflow import fleet as F

    bench.put("t")
    F.apply(bench.ctx, {"slug": "t", "kind": "placed", "workflow": "w", "host": "h1", "run": 1, "seq": -1})
    return bench


def test_each_report_is_applied_once_whatever_the_repeats_and_the_order(placed: Bench) -> None:
    from orch.workflow import fleet as F

    b = placed
    first = report(1, "coding", ["coder started"])
    second = report(2, "validating", ["coder started", "coder: done: x"])
    assert F.apply(b.ctx, first) == "t: coding on host h1"
    before = b.path("t").read_text()
    assert F.apply(b.ctx, first) == ""  # the same report again: nothing changes
    assert b.path("t").read_text() == before
    F.apply(b.ctx, second)
    after = b.path("t").read_text()
    F.apply(b.ctx, first)  # an older one, late: ignored
    F.apply(b.ctx, second)
    assert b.path("t").read_text() == after
    assert b.state("t") == "validating"
    assert b.statuses("t").count("on h1: coder started") == 1
    assert b.statuses("t").count("on h1: coder: done: x") == 1
    task = b.task("t")
    assert task.field("host") == "h1" and task.field("round") == "1"
    assert "/elsewhere" not in after  # the host's own paths are its own


def test_a_lost_host_then_a_new_run_on_another(placed: Bench) -> None:
    from orch.workflow import fleet as F

    b = placed
    F.apply(b.ctx, report(1, "coding", ["coder started"]))
    F.apply(b.ctx, {"slug": "t", "kind": "lost", "workflow": "w", "host": "h1", "run": 1, "seq": -1,
                    "why": "host h1 stopped heartbeating"})
    assert b.state("t") == "lost"
    F.apply(b.ctx, {"slug": "t", "kind": "placed", "workflow": "w", "host": "h2", "run": 2, "seq": -1,
                    "resumed": True})
    F.apply(b.ctx, report(1, "coding", ["coder started"], run=2, host="h2"))
    F.apply(b.ctx, report(5, "fixing", ["late from h1"], run=1))  # the dead host's last word, late: ignored
    assert b.state("t") == "coding"
    lines = b.statuses("t")
    assert "placed on host h2 again (its host was lost)" in lines
    assert "on h2: coder started" in lines and "on h1: late from h1" not in lines
    assert b.ctx.store.hosted("t").host == "h2"  # type: ignore[union-attr]


def test_a_report_for_a_closed_task_is_dropped_and_one_for_a_file_away_a_moment_waits(placed: Bench) -> None:
    from orch.errors import OrchError
    from orch.workflow import fleet as F

    b = placed
    text = b.path("t").read_text()
    b.path("t").unlink()  # an editor's save in progress: the record says the task is open
    with pytest.raises(OrchError, match="missing for now"):
        F.apply(b.ctx, report(1, "coding", ["coder started"]))
    assert b.ctx.store.hosted("t") is not None
    done = b.path("t").parent / "done"
    done.mkdir(exist_ok=True)
    (done / "t.md").write_text(text)  # closed
    assert F.apply(b.ctx, report(1, "coding", ["coder started"])) == ""
    assert b.ctx.store.hosted("t") is None


def test_reports_carry_only_the_lines_not_sent_before(placed: Bench) -> None:
    from orch.workflow import fleet as F

    b = placed
    F.apply(b.ctx, {**report(1, "coding", ["one", "two"])})
    later = report(2, "coding", ["one", "two", "three"])
    F.apply(b.ctx, {**later, "status_from": 2, "status": later["status"][2:]})
    again = report(3, "validating", ["one", "two", "three", "four"])
    F.apply(b.ctx, {**again, "status_from": 1, "status": again["status"][1:]})  # (a resend from an older place)
    assert [x for x in b.statuses("t") if x.startswith("on h1: ")] == [
        "on h1: one", "on h1: two", "on h1: three", "on h1: four"]


def test_a_claim_is_its_workflows_and_names_its_task() -> None:
    from orch.cli.cluster import _task_of

    assert _task_of("orch.1af8e08b178b.fix-x.v2", "orch") == "fix-x.v2"
    assert _task_of("team.a.b.0123abcd.t1", "team.a.b") == "t1"


def test_the_pass_leaves_a_hosted_task_to_its_host_and_counts_its_paths(bench: Bench) -> None:
    """With a cluster, a task on a host has no local coder and is not lost for it; a queued task whose `paths:`
    overlap it waits for it as for work in flight here."""
    from orch.store.fleet import HostedRow
    from orch.workflow.scan import scan

    b = bench
    cfg = Path(b.ctx.ws.config_file)  # (a server never reached: nothing is handed over here)
    cfg.write_text(cfg.read_text().replace("\n[cluster]\n", '\n[cluster]\naddress = "127.0.0.1:1"\n'))
    b.configure()
    b.put("api", "coding", text="---\npaths: [\"src/api/**\"]\n---\nthe api\n")
    b.ctx.store.put_hosted(HostedRow("api", "orch.w.api", "h1", 1, 3, 2, "coding", "", False, 1.0))
    b.put("client", text="---\npaths: [\"src/api/client.py\"]\n---\nuses the api\n")
    report = scan(b.ctx)
    assert b.state("api") == "coding" and not report.lost and not report.spawned, report.lines()
    assert b.task("client").field("waiting for") == "api: overlaps src/api/client.py"


def test_a_hosts_copy_of_a_task_it_no_longer_runs_waits_is_kept_or_is_closed() -> None:
    from orch.fleet.runs import fate

    mine = {"workflow": "orch.w.t", "run": 2, "since": 5.0, "outcome": ""}
    assert fate("running", {"host": "h1", "run": 2}, mine, "h1") == "wait"  # its run here ends by itself
    assert fate("running", {"host": "", "run": 2}, mine, "h1") == "wait"  # a round handed here, not placed yet
    assert fate("running", {"host": "h2", "run": 3}, mine, "h1") == "close"  # went on elsewhere
    assert fate("running", {"host": "", "run": 3, "waiting": "a host"}, mine, "h1") == "close"
    assert fate("running", {"host": "h1", "run": 3}, mine, "h1") == "close"  # (a later run of it: not this copy's)
    assert fate("ended", {"outcome": "ready", "host": "h1", "run": 2}, mine, "h1") == "keep"  # waits for the person
    assert fate("ended", {"outcome": "failed", "host": "h1", "run": 2}, mine, "h1") == "keep"  # for the next round
    assert fate("ended", {"outcome": "closed", "host": "h1", "run": 2}, mine, "h1") == "close"
    assert fate("ended", {"outcome": "ready", "host": "h2", "run": 3}, mine, "h1") == "close"
    assert fate("gone", None, mine, "h1") == "close"
    assert fate("gone", None, {**mine, "outcome": "ready"}, "h1") == "keep"  # (the server forgot it: kept)


def test_a_hosts_record_of_its_runs(tmp_path) -> None:  # noqa: ANN001
    from orch.fleet import runs

    runs.note(str(tmp_path), "a", {"workflow": "w.a", "run": 1, "since": 3.5})
    runs.note(str(tmp_path), "b", {"workflow": "w.b", "run": 2, "since": 4.0})
    (tmp_path / ".orch" / runs.FOLDER / "junk.json").write_text("{not json")
    assert runs.recorded(str(tmp_path)) == {"a": {"workflow": "w.a", "run": 1, "since": 3.5, "outcome": ""},
                                            "b": {"workflow": "w.b", "run": 2, "since": 4.0, "outcome": ""}}
    runs.forget(str(tmp_path), "a")
    runs.forget(str(tmp_path), "a")
    assert list(runs.recorded(str(tmp_path))) == ["b"]


def test_a_closed_tasks_work_in_progress_is_deleted_from_the_remote_and_here(tmp_path) -> None:  # noqa: ANN001
    import subprocess

    from orch.fleet import wip

    def git(*args: str, cwd=tmp_path / "repo") -> str:  # noqa: ANN001
        return subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, text=True, check=True).stdout

    subprocess.run(["git", "init", "-q", "--bare", str(tmp_path / "remote.git")], check=True)
    subprocess.run(["git", "init", "-q", "-b", "main", str(tmp_path / "repo")], check=True)
    git("-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-q", "--allow-empty", "-m", "one")
    git("remote", "add", "origin", str(tmp_path / "remote.git"))
    for slug in ("gone", "kept"):
        git("push", "-q", "origin", f"HEAD:{wip.wip_ref(slug)}")
        git("fetch", "-q", "origin", f"+{wip.wip_ref(slug)}:{wip.wip_ref(slug)}")
    assert wip.delete(str(tmp_path / "repo"), "origin", "gone") == ""
    assert git("for-each-ref", "--format=%(refname)", "refs/orch/") == "refs/orch/wip/kept\n"
    assert git("for-each-ref", "--format=%(refname)", "refs/orch/", cwd=tmp_path / "remote.git") == \
        "refs/orch/wip/kept\n"
    assert wip.delete(str(tmp_path / "repo"), "origin", "never") == ""  # nothing there: nothing to do


def test_a_closed_tasks_work_in_progress_is_kept_on_its_branch_first(tmp_path) -> None:  # noqa: ANN001
    import subprocess

    from orch.fleet import wip

    repo = tmp_path / "repo"

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.invalid",
                               *args], capture_output=True, text=True, check=True).stdout.strip()

    subprocess.run(["git", "init", "-q", "--bare", str(tmp_path / "remote.git")], check=True)
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    git("commit", "-q", "--allow-empty", "-m", "base")
    git("remote", "add", "origin", str(tmp_path / "remote.git"))
    git("commit", "-q", "--allow-empty", "-m", "on a host")
    pushed = git("rev-parse", "HEAD")
    git("push", "-q", "origin", f"HEAD:{wip.wip_ref('t')}")
    git("reset", "-q", "--hard", "HEAD~1")
    # closed before it was ready: no branch here yet, made at the pushed work
    assert wip.keep_on_branch(str(repo), "origin", "t", "orch/t") == "made"
    assert git("rev-parse", "orch/t") == pushed
    # a branch behind it: moved on to it; one that holds it: left as it is
    git("branch", "--force", "orch/t", "main")
    assert wip.keep_on_branch(str(repo), "origin", "t", "orch/t") == ""
    assert git("rev-parse", "orch/t") == pushed
    # a branch that went elsewhere: the work is not kept, so the ref is not to be deleted
    git("branch", "--force", "orch/t", "main")
    git("checkout", "-q", "orch/t")
    git("commit", "-q", "--allow-empty", "-m", "here")
    assert wip.keep_on_branch(str(repo), "origin", "t", "orch/t").startswith("its commits are not on orch/t")
    assert wip.keep_on_branch(str(repo), "origin", "none", "orch/none") == ""  # nothing pushed: nothing to keep
