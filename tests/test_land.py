"""Merge trains (`orch land`) on real git: the scripted parts are the tasks' branches, made here as a coder would."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from orch import git
from orch.errors import OrchError
from orch.workflow import land as L
from orch.workflow import train as TR
from tests.kit.fakes import Bench


def sh(cwd: Path | str, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@e.invalid", *args], cwd=cwd,
                          capture_output=True, text=True, check=True).stdout.strip()


def ready(b: Bench, slug: str, files: dict[str, str], validation: list[str] = (), base: str = "main") -> str:
    return b.ready(slug, files, validation, base)


def main_sha(b: Bench) -> str:
    return sh(b.root, "rev-parse", "main")


def test_a_train_of_three_lands_two_and_sends_back_the_one_that_breaks_only_in_company(bench: Bench) -> None:
    breaks_with_b = "sh -c 'if [ -f b.txt ] && [ -f c.txt ]; then echo c clashes with b; exit 1; fi'"
    ready(bench, "a", {"a.txt": "a\n"}, ["test -f a.txt"])
    ready(bench, "b", {"b.txt": "b\n"}, ["test -f b.txt"])
    ready(bench, "c", {"c.txt": "c\n"}, [breaks_with_b])
    before = main_sha(bench)
    lines = L.land(bench.ctx, ["a", "b", "c"])
    assert lines[0].endswith(": landed") and "landed on main at" in lines[1] and ": a, b" in lines[1], lines
    log = "\n".join(lines)
    assert "once more, in case it is flaky" in log
    assert "bisect: the train up to b" in log and "passes" in log and "bisected: c makes the train fail (with a, b)" in log
    tip = main_sha(bench)
    assert tip != before
    files = sh(bench.root, "ls-tree", "--name-only", "main").split()
    assert "a.txt" in files and "b.txt" in files and "c.txt" not in files
    assert (bench.root / "a.txt").exists()  # main is checked out: its working tree followed
    assert bench.state("a") == "merged" and bench.state("b") == "merged"
    assert bench.state("c") == "fixing"
    prompt = (Path(bench.ctx.ws.path("prompts")) / "c-coder-2.md").read_text()
    assert "in the merge train" in prompt and "> c clashes with b" in prompt and "after a, b" in prompt
    assert any("merged: landed on main by train" in s for s in bench.statuses("a"))
    train = TR.load(bench.ctx, lines[0].split()[1].rstrip(":"))
    assert train is not None and train.validated[-1] == tip and train.members == ["a", "b"]
    # a merged task is not landed again: one clear line
    with pytest.raises(OrchError, match="task 'a' is merged, not ready"):
        L.land(bench.ctx, ["a"])


def test_a_member_that_conflicts_is_taken_out_and_a_dry_run_changes_nothing(bench: Bench) -> None:
    ready(bench, "d", {"README.md": "d's readme\n"})
    ready(bench, "e", {"README.md": "e's readme\n"})
    before = main_sha(bench)
    plan = L.land(bench.ctx, ["d", "e"], dry_run=True)
    assert plan[0].endswith("(dry run: nothing is changed)")
    assert "2. e at" in plan[3] and "conflicts with the train in README.md - would be taken out" in plan[3]
    assert plan[-1].startswith("predicted: d would land on main")
    assert main_sha(bench) == before and bench.state("d") == "ready" and not os.path.exists(bench.ctx.ws.path("trains"))
    lines = L.land(bench.ctx, ["d", "e"])
    assert lines[0].endswith(": landed") and "not landed: e - conflicts with the train in README.md" in lines
    assert bench.state("d") == "merged" and bench.state("e") == "ready"
    assert any("taken out of train" in s and "README.md" in s for s in bench.statuses("e"))
    assert L.ready_to_land(bench.ctx) == ["ready to land (`orch land TASK...`, in the order given):",
                                          f"  e  {git.rev(str(bench.root), 'orch/e')[:12]}"]


def test_a_base_that_moves_mid_train_is_never_forced(bench: Bench, tmp_path: Path) -> None:
    mark = tmp_path / "moved-once"
    mover = (f"sh -c 'if [ ! -e {mark} ]; then touch {mark}; git -C {bench.root} -c user.name=p "
             f"-c user.email=p@e.invalid commit -q --allow-empty -m by-the-person; fi'")
    ready(bench, "f", {"f.txt": "f\n"}, [mover])
    before = main_sha(bench)
    lines = L.land(bench.ctx, ["f"])
    assert lines[0].endswith(": landed"), lines
    assert "main moved during the train: built again on its new head (never forced)" in "\n".join(lines)
    moved = sh(bench.root, "log", "--format=%H %s", "main").splitlines()
    person = [line.split()[0] for line in moved if line.endswith("by-the-person")]
    assert len(person) == 1 and person[0] != before
    assert subprocess.run(["git", "-C", str(bench.root), "merge-base", "--is-ancestor", person[0], "main"]).returncode == 0
    assert bench.state("f") == "merged"


def orch_land(root: Path, *args: str, fault: str = "") -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "ORCH_FAULT"}
    if fault:
        env["ORCH_FAULT"] = fault
    return subprocess.run([sys.executable, "-m", "orch", "land", *args], cwd=root, env=env, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.reliability
def test_kill_9_anywhere_in_a_train_never_leaves_the_base_at_an_unvalidated_sha(tmp_path: Path, tally) -> None:
    rng = random.Random(1402)
    killed = 0
    for run_no in range(24):
        b = Bench(tmp_path / f"r{run_no}")
        try:
            ready(b, "a", {"a.txt": "a\n"}, ["test -f a.txt"])
            ready(b, "b", {"b.txt": "b\n"}, ["test -f b.txt"])
            before = main_sha(b)
            n = rng.randint(1, 13)  # (a train of two reaches 13 fault points, from its authorisation to its end)
            first = orch_land(b.root, "a", "b", fault=f"*:{n}")
            trains = list(Path(b.ctx.ws.path("trains")).glob("*.json"))
            validated = json.loads(trains[0].read_text())["validated"] if trains else []
            assert main_sha(b) in (before, *validated), (n, first.stdout, first.stderr)
            if first.returncode == -9:
                killed += 1
            again = orch_land(b.root, "a", "b") if rng.random() < 0.5 else orch_land(b.root)
            assert again.returncode == 0, again.stderr
            if "landed" not in again.stdout:  # (`orch land` alone finished what was cut short, or nothing was)
                assert orch_land(b.root, "a", "b").returncode == 0
            train = json.loads(next(Path(b.ctx.ws.path("trains")).glob("*.json")).read_text())
            assert train["state"] == "landed" and main_sha(b) == train["tip"] and main_sha(b) in train["validated"]
            assert b.state("a") == "merged" and b.state("b") == "merged", (n, b.statuses("a"), b.statuses("b"))
            files = sh(b.root, "ls-tree", "--name-only", "main").split()
            assert "a.txt" in files and "b.txt" in files
            assert sh(b.root, "status", "--porcelain", "--untracked-files=no") == ""
        finally:
            b.close()
    assert killed >= 20, killed
    tally.add("faults injected", killed)


def test_a_rebase_that_changes_nothing_carries_the_review_and_one_that_does_asks_for_another(bench: Bench) -> None:
    bench.configure(tables="")
    cfg = Path(bench.ctx.ws.config_file)
    cfg.write_text(cfg.read_text().replace('\n# method = "merge"\n', '\nmethod = "rebase"\n'))
    from orch import config

    bench.ctx.cfg = config.load(bench.ctx.ws)
    (bench.root / "y.txt").write_text("1\n2\n3\n4\n5\n")
    sh(bench.root, "add", "y.txt")
    sh(bench.root, "commit", "-qm", "y")
    ready(bench, "g", {"g.txt": "g\n"})
    sha_h = ready(bench, "h", {"y.txt": "1\ntwo\n3\n4\n5\n"})
    (bench.root / "y.txt").write_text("1\n2\n3\nfour\n5\n")  # the base moves on: near h's line, not on it
    sh(bench.root, "commit", "-qam", "y: four")
    lines = L.land(bench.ctx, ["g", "h"])
    assert lines[0].endswith(": landed") and ": g" in lines[1], lines
    assert "not landed: h - its patches changed on the new base: review of the difference due" in lines
    # g: rebased, its patches the same: the review carried over, with the evidence in the dossier's record
    train = TR.load(bench.ctx, lines[0].split()[1].rstrip(":"))
    assert train is not None and " = " in train.carried["g"]
    assert sh(bench.root, "log", "-1", "--format=%s", "main") == "g: its work"  # a linear history
    assert bench.state("g") == "merged"
    # h: its branch took the rebased commits; validated and reviewed again before it can land
    assert bench.state("h") == "validating"
    head = git.rev(str(bench.root), "orch/h")
    assert head != sha_h and sh(bench.root, "show", f"{head}:y.txt") == "1\ntwo\n3\nfour\n5"
    note = bench.task("h").field("range diff") or ""
    assert " ! " in Path(note).read_text()


ONE_FILE = """\
Write {name}.

## Validation
- `test -f {name}`
- `{check}`

```scripted
coder:
  write {name} "{slug}\\n"
  commit "{slug}: {name}"
  report "done: wrote {name}"
reviewer:
  verdict approve
coder round 2:
  run git rm -q {name}
  write {slug}-b.txt "{slug}\\n"
  commit "{slug}: keep out of two's way"
  report "done: moved to {slug}-b.txt"
reviewer round 2:
  verdict approve
```
"""
CLASH = "sh -c 'if [ -f two.txt ] && [ -f three.txt ]; then echo three clashes with two; exit 1; fi'"


@pytest.mark.tmux
@pytest.mark.e2e
def test_a_train_of_three_scripted_tasks_lands_two_and_sends_the_third_back(ws) -> None:  # noqa: ANN001
    for slug in ("one", "two"):
        ws.task(slug, ONE_FILE.format(name=f"{slug}.txt", slug=slug, check="true"))
    ws.task("three", ONE_FILE.format(name="three.txt", slug="three", check=CLASH).replace(
        "- `test -f three.txt`\n", ""))
    for slug in ("one", "two", "three"):
        ws.run_until(slug, ("ready",), timeout=90)
    listed = ws.orch("land").out
    assert "ready to land" in listed and all(f"  {s}  " in listed for s in ("one", "two", "three"))
    dry = ws.orch("land", "one", "two", "three", "--dry-run").out
    assert "predicted: one, two, three would land on main" in dry
    out = ws.orch("land", "one", "two", "three").out
    assert "landed on main at" in out and ": one, two" in out and "bisected: three makes the train fail" in out, out
    assert "not landed: three - the train fails with it: sent back to its coder" in out
    main = subprocess.run(["git", "-C", str(ws.root), "ls-tree", "--name-only", "main"], capture_output=True,
                          text=True, check=True).stdout.split()
    assert "one.txt" in main and "two.txt" in main and "three.txt" not in main
    for slug in ("one", "two"):
        t = ws.task_status(slug)
        assert t["state"] == "merged" and (ws.root / ".worktree" / slug).is_dir()  # open until the person closes it
        md = (ws.root / ".orch" / "dossiers" / f"{slug}.md").read_text()
        assert "## Landed by train" in md and "`test -f one.txt` | 0 |" in md
    assert "landed already" in ws.orch("land", "one", "two", "three").out  # asking again is harmless
    fix = (ws.root / ".orch" / "prompts" / "three-coder-2.md").read_text()
    assert "in the merge train" in fix and "> three clashes with two" in fix
    # the coder fixes it, the review loop approves it again, and it lands on its own train
    ws.run_until("three", ("ready",), timeout=90)
    assert "landed on main at" in ws.orch("land", "three").out
    assert ws.task_status("three")["state"] == "merged"
    refused = ws.orch("land", "one", check=False)
    assert refused.code == 1 and refused.err.strip() == ("orch: task 'one' is merged, not ready: only ready tasks "
                                                          "land (`orch status one`)")
    ws.orch("close", "one")
    assert (ws.tasks / "done" / "one.md").exists()
