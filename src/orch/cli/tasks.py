"""Commands about tasks: init, add, scan, new-task, status, close, log."""

from __future__ import annotations

import os
import shutil
import sys
import time

import typer

from orch.cli.app import STATE, app, context
from orch.cli.render import console, duration, print_json, table
from orch.errors import OrchError


@app.command()
def init(path: str = typer.Argument(".", help="A folder inside the git repository to prepare.")) -> None:
    """Prepare the git repository for orch: .orch/ with config, task folder, database; git excludes."""
    from orch.workflow.setup import init as do_init

    ws, did = do_init(path)
    for line in did:
        console.print(line)
    console.print(f"orch workspace ready at {ws.root}" if did else f"{ws.root} is already an orch workspace")
    console.print("next: orch add \"what to do\"  then  orch run --detach  (the daemon; `orch scan` is one pass by hand)")


@app.command()
def add(
    text: list[str] = typer.Argument(None, help="What the task is about (the task file's text); - reads it from "
                                                "standard input."),
    slug: str | None = typer.Option(None, "--slug", "-s", help="The task's name (default: derived from the text)."),
    agent: str | None = typer.Option(None, "--agent", "-a", help="Agent profile for this task (default: default_agent)."),
    edit: bool = typer.Option(False, "--edit", "-e", help="Write it in your editor ($EDITOR), from a template with "
                                                          "the sections orch recognises."),
    hold: bool = typer.Option(False, "--hold", help="Keep it queued until `orch start TASK` (hold: true)."),
) -> None:
    """Write a new task file in the task folder (queued; the daemon, or `orch scan`, starts it)."""
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
    console.print(f"queued {name}  ({path}); {how}")


@app.command()
def scan(as_json: bool = typer.Option(False, "--json", help="Print the report as JSON.")) -> None:
    """One reconcile pass: apply messages, start queued tasks, find lost workers and orphan windows."""
    from orch.workflow.scan import scan as do_scan

    report = do_scan(context())
    if as_json:
        data = {k: v for k, v in report.__dict__.items() if k not in ("orphans", "invalid")}
        data["orphans"] = [o.__dict__ for o in report.orphans]
        data["invalid"] = [{"file": i.file, "error": i.error} for i in report.invalid]
        print_json(data)
        return
    lines = [line for line in report.lines() if not line.startswith("error: ")]
    if lines or not report.errors:
        console.print("\n".join(lines) if lines else "nothing to do")
    if report.errors:  # what the pass could not do: each one line on stderr, and the exit says so
        for error in report.errors:
            sys.stderr.write(f"orch: {error}\n")
        raise typer.Exit(1)


@app.command()
def start(task: str = typer.Argument(..., metavar="SLUG|FILE", help="A task name, or a task file to add and start.")) -> None:
    """Start the coder of one task now, held or not (touches no other task)."""
    new_task(task)


@app.command("new-task")
def new_task(task: str = typer.Argument(..., metavar="SLUG|FILE", help="A task name, or a task file to add and start.")) -> None:
    """The same as `orch start` (its older name)."""
    from orch.workflow.restart import new_task as do_new_task

    ctx = context()
    slug = _task_from_arg(ctx, task)
    worker = do_new_task(ctx, slug)
    console.print(f"started {worker.address}: window {worker.window_id}, pane {worker.pane_id}, worktree {worker.worktree}")


@app.command()
def retry(
    task: str = typer.Argument(..., help="A blocked task (back to its coder) or a ready one (validated and reviewed "
                                         "again)."),
    rounds: int | None = typer.Option(None, "--rounds", "-r", min=1,
                                      help="Rounds it may take from now (default: max_review_rounds)."),
) -> None:
    """Move a blocked task on (a new round for its coder with the open blockers, more rounds allowed), or have a
    ready one validated and reviewed again (its base moved on)."""
    from orch import slug as slugs
    from orch.workflow.restart import retry as do_retry

    done = do_retry(context(), slugs.check(task), rounds)
    if done.state == "fixing":
        how = {"typed": "typed into its coder", "queued": "queued: a person is attached to its window",
               "new coder": "a new coder started with it", "failed": "not taken by the coder (see the task)"}
        console.print(f"{task}: round {done.round} of at most {done.budget}, fix request "
                      f"{how.get(done.delivered, done.delivered)}")
    else:
        console.print(f"{task}: validating again (round {done.round}); the next pass (`orch run` or `orch scan`) "
                      "validates it and starts a new review")


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
            shutil.copyfile(path, target)
        elif not os.path.exists(path) and not os.path.exists(target):
            raise OrchError(f"no such file: {arg}")
        return name
    return slugs.check(arg)


@app.command()
def status(
    task: str | None = typer.Argument(None, help="One task: everything about it (default: every task)."),
    as_json: bool = typer.Option(False, "--json", help="Print the documented JSON shape."),
    show_all: bool = typer.Option(False, "--all", "-a", help="Closed tasks too."),
    watch: bool = typer.Option(False, "--watch", "-w", help="Show it again every 2 seconds, until Ctrl-C."),
) -> None:
    """Every task with its state and workers, plus orphan windows and invalid task files; or one task in full."""
    if watch:
        _watch(task, show_all)
        return
    data = _view(context(), task, show_all)
    if as_json:
        print_json(data)
    elif task is not None:
        sys.stdout.write(_one_text(data))
    else:
        _print_all(data)


def _view(ctx, task: str | None, show_all: bool) -> dict:  # noqa: ANN001 - a workflow Ctx
    """What `orch status` shows: one task in full, or every task."""
    if task is not None:
        from orch.workflow.taskview import one

        return one(ctx, task)
    from orch.workflow.status import collect

    return collect(ctx, closed=show_all)


def _print_all(data: dict) -> None:
    if not data["tasks"]:
        console.print(f"no tasks in this workspace ({data['workspace']}); add one with `orch add \"...\"`")
    daemon = data["daemon"]
    if daemon["running"]:
        since = time.strftime(" since %Y-%m-%d %H:%M", time.localtime(daemon["since"])) if daemon["since"] else ""
        console.print(f"daemon: running (pid {daemon['pid'] or '?'}{since})")
    else:
        console.print("daemon: not running - tasks move only when you run `orch scan`; start it with `orch run --detach`")
    console.print(f"sandbox: {data['sandbox']}")
    t = table("TASK", "STATE", "WORKER", "AGENT", "WINDOW", "PANE", "WORKER STATE", "SANDBOX", "LAST STATUS")
    width = max(console.width - 100, 40)  # the last column gets what the terminal has left
    for task in data["tasks"]:
        last = (task["last_status"] or "")[21:]
        live = [w for w in task["workers"] if w["state"] not in ("exited", "lost")]
        gone = [w for w in task["workers"] if w["state"] in ("exited", "lost")]
        rows: list[dict | None] = [*live, *gone[-1:]] if live or gone else [None]
        for i, w in enumerate(rows):
            first = i == 0
            state = f"{w['state']} {duration(w['state_for_s'])}".strip() if w else ""
            if w is not None and w in gone and len(gone) > 1:
                state += f" (+{len(gone) - 1} more ended)"
            t.add_row(
                task["slug"] if first else "",
                task["state"] if first else "",
                w["address"] if w else "-",
                w["agent"] if w else task["agent"],
                w["window_id"] if w else "",
                w["pane_id"] if w else "",
                state,
                ("on" if w["sandbox"] == "bubblewrap" else "off") if w else "",
                (last[:width] + ("…" if len(last) > width else "")) if first else "",
            )
    if data["tasks"]:
        console.print(t)
    for task in data["tasks"]:
        for q in task["queued_for_workers"]:
            console.print(f"queued for {q['worker']} ({q['why']}): waits until nobody is attached to its window")
    if data["orphans"]:
        console.print("\norphan windows (not killed; `orch close` or tmux kill-window to remove):")
        for o in data["orphans"]:
            console.print(f"  {o['window_id']} {o['session_name']} {o['task']}:{o['role']} - {o['reason']}")
    if data["invalid_tasks"]:
        console.print("\ninvalid task files (not started):")
        for i in data["invalid_tasks"]:
            console.print(f"  {i['error']}")


def _one_text(data: dict) -> str:
    out = [f"{data['slug']}: {data['state']}" + ("  (hold: true)" if data["hold"] else ""),
           f"file: {data['file']}"]
    if data["branch"]:
        out.append(f"branch: {data['branch']}  worktree: {data['worktree']}")
    out += ["", "summary:", *(f"  {line}" for line in data["summary"][1:] or ["(nothing yet)"])]
    out += ["", "workers:"]
    for w in data["workers"] or [None]:
        if w is None:
            out.append("  (none running)")
            continue
        source = f", from {w['state_source']}" if w["state_source"] else ""
        out.append(f"  {w['address']:<24} {w['agent']:<8} {w['state']} for {duration(w['state_for_s'])}{source}; "
                   f"window {w['window_id']} pane {w['pane_id']}; sandbox "
                   f"{'on' if w['sandbox'] == 'bubblewrap' else 'off'}")
    if data["ended_workers"]:
        out.append(f"  ({len(data['ended_workers'])} ended before: `orch status {data['slug']} --json` lists them)")
    if data["validation"]:
        v0 = data["validation"][0]
        out += ["", f"validation (round {v0['round']}, {v0['sha'][:12]}):"]
        for v in data["validation"]:
            how = "timed out" if v["timed_out"] else ("passed" if v["exit_code"] == 0 else f"failed (exit {v['exit_code']})")
            out.append(f"  `{v['command']}` {how} in {v['duration']:.1f}s  ({v['log']})")
    if data["reviews"]:
        out += ["", "reviews:"]
        for r in data["reviews"]:
            found = f", {len(r['findings'])} finding(s)" if r["findings"] else ""
            note = f" - {r['note']}" if r["note"] else ""
            out.append(f"  round {r['round']} on {r['sha'][:12]}: {r['decision'] or 'pending'}{found}, {r['status']}{note}")
    if data["dossier"]:
        out += ["", f"dossier: {data['dossier']}"]
    if data["pending_messages"]:
        out += ["", f"{data['pending_messages']} message(s) not applied yet"]
    out += ["", "last status lines:", *(f"  {line}" for line in data["status"] or ["(none)"])]
    return "\n".join(out) + "\n"


def _watch(task: str | None, show_all: bool) -> None:
    """The view again every 2 seconds, on a cleared screen, until Ctrl-C."""
    from orch.cli.app import STATE

    try:
        while True:
            ctx = context()
            try:
                data = _view(ctx, task, show_all)
            finally:
                STATE.opened.remove(ctx)
                ctx.close()
            if task is not None:
                text = _one_text(data)
            else:
                with console.capture() as shot:
                    _print_all(data)
                text = shot.get()
            sys.stdout.write("\x1b[H\x1b[2J" + time.strftime("%H:%M:%S") + "  orch status (Ctrl-C ends)\n\n" + text)
            sys.stdout.flush()
            time.sleep(2)
    except KeyboardInterrupt:
        sys.stdout.write("\n")


@app.command()
def diff(
    task: str = typer.Argument(..., help="The task."),
    stat: bool = typer.Option(False, "--stat", help="Only the files changed and how much."),
    round_no: int | None = typer.Option(None, "--round", "-r", min=1, help="As of that review round's commit."),
    since: int | None = typer.Option(None, "--since-round", min=1,
                                     help="How its commits changed since that round (git range-diff)."),
) -> None:
    """What the task's branch changes against its base (from their merge base, as a merge would see it)."""
    from orch import slug as slugs
    from orch.workflow.diff import show

    sys.stdout.write(show(context(), slugs.check(task), stat, round_no, since, color=sys.stdout.isatty()))


@app.command()
def close(
    task: str = typer.Argument(..., help="The task to close."),
    force: bool = typer.Option(False, "--force", help="Remove the worktree even with uncommitted changes."),
    delete_branch: bool = typer.Option(False, "--delete-branch", help="Also delete the task's branch."),
) -> None:
    """Close a task (only when you say so): save screens, kill its session, remove its worktree, file it in done/."""
    from orch.workflow.close import close as do_close

    result = do_close(context(), task, force=force, delete_branch=delete_branch)
    for path in result.screens:
        console.print(f"saved screen {path}")
    if result.worktree_removed:
        console.print(f"removed worktree {result.worktree_removed}")
    if result.worktree_kept:
        console.print(f"kept worktree {result.worktree_kept} (orch did not make it)")
    console.print(f"branch {result.branch} {'deleted' if result.branch_deleted else 'kept'}")
    console.print(f"closed {task}: {result.moved_to}")


@app.command()
def dossier(task: str = typer.Argument(..., help="The task."), as_json: bool = typer.Option(False, "--json")) -> None:
    """Print a task's merge-ready dossier (written when its branch is approved and validated)."""
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


@app.command()
def log(
    task: str | None = typer.Argument(None, help="Only this task's events."),
    limit: int = typer.Option(50, "-n", help="How many events."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new events as they happen (Ctrl-C ends)."),
) -> None:
    """The event log, newest last."""
    ctx = context()
    last = 0
    events = ctx.store.events(task, limit)
    if task is not None and not events:
        from orch.workflow import tasks as T

        T.get(ctx, task)  # an unknown task says so (a closed one too); a known one has no events yet
    for e in events:
        _print_event(e)
        last = e.id
    if not follow:
        return
    import signal

    stop: list[int] = []
    for signum in (signal.SIGINT, signal.SIGTERM):  # Ctrl-C ends it between two readings, never inside one
        signal.signal(signum, lambda n, _f: stop.append(n))
    while not stop:
        for e in ctx.store.events_after(last, task):
            _print_event(e)
            last = e.id
        for _ in range(5):
            if stop:
                break
            time.sleep(0.1)


def _print_event(e) -> None:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(e.at))
    who = e.task + (f" {e.worker}" if e.worker else "")
    sys.stdout.write(f"{stamp} {e.kind:<10} {who:<20} {e.text}\n")
    sys.stdout.flush()


_ = STATE  # the global -C option lives in app.py
