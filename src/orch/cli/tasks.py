"""Commands about tasks: init, add, start, scan, retry, diff, close, dossier."""

from __future__ import annotations

import os
import sys

from orch.cli.app import context
from orch.cli.render import print_json, say
from orch.errors import OrchError


def init(path: str) -> None:
    from orch.workflow.setup import init as do_init

    ws, did = do_init(path)
    for line in did:
        say(line)
    say(f"orch workspace ready at {ws.root}" if did else f"{ws.root} is already an orch workspace")
    say("next: orch add \"what to do\"  then  orch run --detach  (the daemon; `orch scan` is one pass by hand)")


def add(text: list[str], slug: str | None, agent: str | None, edit: bool, hold: bool) -> None:
    from orch.workflow.setup import add as do_add
    from orch.workflow.setup import written_in_editor

    ctx = context()
    words = list(text or [])
    if edit:
        if words:
            raise OrchError("orch add --edit takes no text: write it in the editor")
        body = written_in_editor()
    elif words == ["-"]:
        body = sys.stdin.read()
    elif words:
        body = " ".join(words)
    else:
        raise OrchError('orch add needs the task: orch add "what to do", orch add - < task.md, or orch add --edit')
    path = do_add(ctx, body, slug=slug, agent=agent, hold=hold)
    name = os.path.basename(path)[:-3]
    how = f"held: `orch start {name}` starts it" if hold else "the daemon (or `orch scan`) starts it"
    say(f"queued {name}  ({path}); {how}")


def scan(as_json: bool) -> int:
    from orch.workflow.scan import scan as do_scan

    report = do_scan(context())
    if as_json:
        data = {k: v for k, v in report.__dict__.items() if k not in ("orphans", "invalid")}
        data["orphans"] = [o.__dict__ for o in report.orphans]
        data["invalid"] = [{"file": i.file, "error": i.error} for i in report.invalid]
        print_json(data)
        return 0
    lines = [line for line in report.lines() if not line.startswith("error: ")]
    if lines or not report.errors:
        say("\n".join(lines) if lines else "nothing to do")
    if report.errors:  # what the pass could not do: each one line on stderr, and the exit says so
        for error in report.errors:
            sys.stderr.write(f"orch: {error}\n")
        return 1
    return 0


def start(task: str) -> None:
    """`orch start` and `orch new-task`."""
    from orch.workflow.restart import new_task as do_new_task

    ctx = context()
    slug = _task_from_arg(ctx, task)
    worker = do_new_task(ctx, slug)
    say(f"started {worker.address}: window {worker.window_id}, pane {worker.pane_id}, worktree {worker.worktree}")


def retry(task: str, rounds: int | None) -> int:
    from orch import slug as slugs
    from orch.cli.route import on_host
    from orch.workflow.restart import retry as do_retry

    if (code := on_host(task, ["retry", task, *(["--rounds", str(rounds)] if rounds else [])],
                        running=True)) is not None:
        return code
    done = do_retry(context(), slugs.check(task), rounds)
    if done.state == "fixing":
        how = {"typed": "typed into its coder", "queued": "queued: a person is attached to its window",
               "new coder": "a new coder started with it", "failed": "not taken by the coder (see the task)",
               "sent to its host": "sent to its host, for its coder there"}
        say(f"{task}: round {done.round} of at most {done.budget}, fix request "
                      f"{how.get(done.delivered, done.delivered)}")
    elif done.delivered == "sent to its host":
        say(f"{task}: validating again (round {done.round}) on its host, then a new review there")
    else:
        say(f"{task}: validating again (round {done.round}); the next pass (`orch run` or `orch scan`) "
                      "validates it and starts a new review")
    return 0


def _task_from_arg(ctx, arg: str) -> str:
    from orch import slug as slugs

    if arg.endswith(".md") or os.sep in arg:
        path = os.path.abspath(arg)
        name = os.path.basename(path)[:-3] if path.endswith(".md") else os.path.basename(path)
        slugs.check(name)
        target = os.path.join(ctx.cfg.tasks_path, name + ".md")
        if os.path.exists(path) and os.path.realpath(path) != os.path.realpath(target):
            if os.path.exists(target):
                raise OrchError(f"a different task {name!r} already exists at {target}")
            import shutil

            shutil.copyfile(path, target)
        elif not os.path.exists(path) and not os.path.exists(target):
            raise OrchError(f"no such file: {arg}")
        return name
    return slugs.check(arg)


def diff(task: str, stat: bool, round_no: int | None, since: int | None) -> None:
    from orch import slug as slugs
    from orch.workflow.diff import show

    sys.stdout.write(show(context(), slugs.check(task), stat, round_no, since, color=sys.stdout.isatty()))


def land(tasks: list[str], dry_run: bool) -> None:
    from orch import slug as slugs
    from orch.workflow import land as L

    ctx = context()
    if not tasks:
        lines = L.ready_to_land(ctx)
    else:
        from orch.locks import hold

        with hold(ctx.lock_path("land"), wait=0) as got:
            if not got:
                raise OrchError("another orch land is running (lock .orch/locks/land.lock); wait for it to end")
            lines = L.land(ctx, [slugs.check(t) for t in tasks], dry_run)
    sys.stdout.write("".join(line + "\n" for line in lines))
    if lines[0].endswith(": failed"):
        why = next((line.split("failed: ", 1)[1] for line in reversed(lines) if "failed: " in line), "see above")
        raise OrchError(f"nothing landed: {why}")


def workspace_round(task: str, round_no: int) -> None:
    from orch import slug as slugs
    from orch.workflow.restart import workspace_round as take

    text = "" if sys.stdin.isatty() else sys.stdin.buffer.read().decode("utf-8", "surrogateescape")
    done = take(context(), slugs.check(task), text, round_no)
    say(f"{task}: round {done.round} ({done.state}{', ' + done.delivered if done.delivered else ''})")


def close(task: str, force: bool, delete_branch: bool) -> None:
    from orch.workflow.close import close as do_close

    result = do_close(context(), task, force=force, delete_branch=delete_branch)
    if result.host:
        say(result.host)
    for path in result.screens:
        say(f"saved screen {path}")
    if result.worktree_removed:
        say(f"removed worktree {result.worktree_removed}")
    if result.worktree_kept:
        say(f"kept worktree {result.worktree_kept} (orch did not make it)")
    say(f"branch {result.branch} {'deleted' if result.branch_deleted else 'kept'}")
    say(f"closed {task}: {result.moved_to}")


def dossier(task: str, as_json: bool) -> None:
    from orch import slug as slugs
    from orch.workflow.dossier import paths

    ctx = context()
    md, js = paths(ctx, slugs.check(task))
    path = js if as_json else md
    if not os.path.exists(path):
        from orch.workflow import tasks as T

        T.get(ctx, task)  # no such task (or a closed one) says so
        raise OrchError(f"task {task!r} has no dossier yet (written when its branch is approved): `orch status` shows where it is")
    with open(path, encoding="utf-8") as fh:
        sys.stdout.write(fh.read())


