"""Commands that look at the work: status (every task, one task, --watch) and log."""

from __future__ import annotations

import sys
import time

from orch.cli.app import STATE, context
from orch.cli.render import duration, print_json, table


def status(task: str | None, as_json: bool, show_all: bool, watch: bool) -> None:
    if watch:
        _watch(task, show_all)
        return
    data = _view(context(), task, show_all)
    if as_json:
        print_json(data)
    else:
        sys.stdout.write(_one_text(data) if task is not None else _all_text(data))


def _view(ctx, task: str | None, show_all: bool) -> dict:  # noqa: ANN001 - a workflow Ctx
    """What `orch status` shows: one task in full, or every task."""
    if task is not None:
        from orch.workflow.taskview import one

        return one(ctx, task)
    from orch.workflow.status import collect

    return collect(ctx, closed=show_all)


HEADERS = ("TASK", "STATE", "CONFLICTS", "WORKER", "AGENT", "WINDOW", "PANE", "WORKER STATE", "SANDBOX", "LAST STATUS")


def _all_text(data: dict) -> str:
    out = []
    if not data["tasks"]:
        out.append(f"no tasks in this workspace ({data['workspace']}); add one with `orch add \"...\"`")
    daemon = data["daemon"]
    if daemon["running"]:
        since = time.strftime(" since %Y-%m-%d %H:%M", time.localtime(daemon["since"])) if daemon["since"] else ""
        out.append(f"daemon: running (pid {daemon['pid'] or '?'}{since})")
    else:
        out.append("daemon: not running - tasks move only when you run `orch scan`; start it with `orch run --detach`")
    out.append(f"sandbox: {data['sandbox']}")
    rows: list[tuple[str, ...]] = []
    for task in data["tasks"]:
        last = (task["last_status"] or "")[21:]
        live = [w for w in task["workers"] if w["state"] not in ("exited", "lost")]
        gone = [w for w in task["workers"] if w["state"] in ("exited", "lost")]
        shown: list[dict | None] = [*live, *gone[-1:]] if live or gone else [None]
        for i, w in enumerate(shown):
            first = i == 0
            state = f"{w['state']} {duration(w['state_for_s'])}".strip() if w else ""
            if w is not None and w in gone and len(gone) > 1:
                state += f" (+{len(gone) - 1} more ended)"
            rows.append((
                task["slug"] if first else "",
                task["state"] if first else "",
                _conflicts(task.get("conflicts")) if first else "",
                w["address"] if w else "-",
                w["agent"] if w else task["agent"],
                w["window_id"] if w else "",
                w["pane_id"] if w else "",
                state,
                ("on" if w["sandbox"] == "bubblewrap" else "off") if w else "",
                last if first else "",
            ))
    text = "\n".join(out) + "\n"
    if rows and any(t.get("host") for t in data["tasks"]):  # many hosts: where each task runs
        hosts = iter(t.get("host") or "-" for t in data["tasks"])
        rows = [(r[0], r[1], next(hosts) if r[0] else "", *r[2:]) for r in rows]
        text += table((*HEADERS[:2], "HOST", *HEADERS[2:]), rows)
    elif rows:
        text += table(HEADERS, rows)
    more = []
    for task in data["tasks"]:
        for q in task["queued_for_workers"]:
            more.append(f"queued for {q['worker']} ({q['why']}): waits until nobody is attached to its window")
    if data["orphans"]:
        more.append("\norphan windows (not killed; `orch close` or tmux kill-window to remove):")
        for o in data["orphans"]:
            more.append(f"  {o['window_id']} {o['session_name']} {o['task']}:{o['role']} - {o['reason']}")
    if data["invalid_tasks"]:
        more.append("\ninvalid task files (not started):")
        for i in data["invalid_tasks"]:
            more.append(f"  {i['error']}")
    return text + "".join(line + "\n" for line in more)


def _conflicts(found: dict | None) -> str:
    """The radar's column: "-" (no branch yet), "none", or what the branch conflicts with."""
    if found is None:
        return "-"
    names = (["base"] if found["with_base"] else []) + list(found["with"])
    return ", ".join(names) if names else "none"


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
    if data["conflicts"] and (data["conflicts"]["with_base"] or data["conflicts"]["with"]):
        out += ["", "conflicts (the radar):"]
        if data["conflicts"]["with_base"]:
            out.append(f"  with the base: {', '.join(data['conflicts']['with_base'])}")
        out += [f"  with {other}: {', '.join(paths)}" for other, paths in data["conflicts"]["with"].items()]
    if data["dossier"]:
        out += ["", f"dossier: {data['dossier']}"]
    from orch.workflow.checker import lines

    out += ["", "check:", *(f"  {line}" for line in lines(data["check"])[1:])]
    if data["pending_messages"]:
        out += ["", f"{data['pending_messages']} message(s) not applied yet"]
    out += ["", "last status lines:", *(f"  {line}" for line in data["status"] or ["(none)"])]
    return "\n".join(out) + "\n"


def check(task: str, as_json: bool) -> None:
    """`orch check TASK`: the task-checker's report."""
    from orch.workflow.checker import lines, report

    data = report(context(), task)
    if as_json:
        print_json(data)
    else:
        sys.stdout.write("\n".join(lines(data)) + "\n")


def conflicts(as_json: bool) -> None:
    """`orch conflicts`: the conflict radar, computed now (only what moved since the last pass is merged)."""
    from orch.workflow import radar

    ctx = context()
    rows = ctx.store.task_rows()
    found = radar.compute(ctx, rows, None, radar.load(ctx))
    radar.save(ctx, found)
    if as_json:
        print_json(radar.report(found))
        return
    sys.stdout.write("\n".join(radar.matrix(found)) + "\n")


def dash() -> None:
    """`orch dash`: the terminal dashboard, until q."""
    if not sys.stdout.isatty():
        from orch.errors import OrchError

        raise OrchError("orch dash needs a terminal; `orch status --watch` or `orch web` work without one")
    from orch.dash.app import Dash

    Dash(context().ws).run()


def web(host: str, port: int) -> None:
    """`orch web`: serve the dashboard until Ctrl-C (the URL, with its token, is printed first)."""
    from orch.web.app import serve

    ctx = context()

    def say(line: str) -> None:
        print(line, flush=True)

    try:
        serve(ctx.ws, host, port, say)
    except KeyboardInterrupt:
        pass


def _watch(task: str | None, show_all: bool) -> None:
    """The view again every 2 seconds, on a cleared screen, until Ctrl-C."""
    try:
        while True:
            ctx = context()
            try:
                data = _view(ctx, task, show_all)
            finally:
                STATE.opened.remove(ctx)
                ctx.close()
            text = _one_text(data) if task is not None else _all_text(data)
            sys.stdout.write("\x1b[H\x1b[2J" + time.strftime("%H:%M:%S") + "  orch status (Ctrl-C ends)\n\n" + text)
            sys.stdout.flush()
            time.sleep(2)
    except KeyboardInterrupt:
        sys.stdout.write("\n")


def log(task: str | None, limit: int, follow: bool) -> None:
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


def _print_event(e) -> None:  # noqa: ANN001 - a store Event
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(e.at))
    who = e.task + (f" {e.worker}" if e.worker else "")
    sys.stdout.write(f"{stamp} {e.kind:<10} {who:<20} {e.text}\n")
    sys.stdout.flush()
