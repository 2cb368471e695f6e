"""`orch -` / `orch message`: record a message from a worker or the user.

On the hot path: no sqlite, TOML or configuration here. The message is spooled durably (inbox.py) and a
detached applier is started so the caller never waits for task files to be updated.
"""

import os
import sys
import time

from orch import inbox
from orch.errors import OrchError
from orch.slug import is_valid
from orch.workspace import Workspace, cached_tasks_dir, daemon_running, find

USAGE = "usage: orch - [task-<slug>:] <text...>   (text from stdin when no arguments are given)"
VERDICT_USAGE = (
    "usage: orch verdict approve|request-changes [--task SLUG] [FINDING...]   "
    "(findings as arguments or on stdin, one per line: <blocker|major|minor|note>: [path[:line]] <text>)"
)


def split_prefix(text: str) -> tuple[str | None, str]:
    """``task-<slug>: text`` -> (slug, text); anything else -> (None, text)."""
    if text.startswith("task-"):
        head, colon, rest = text.partition(":")
        candidate = head[len("task-") :]
        if colon and is_valid(candidate):
            return candidate, rest.strip()
    return None, text.strip()


def full_python() -> None:
    """Started by the lean launcher (python -S)? Load site-packages before importing anything beyond the
    standard library (the config, the workflow)."""
    if "site" not in sys.modules:
        import site

        site.main()


def _fail(message: str, code: int = 1) -> int:
    sys.stderr.write(f"orch: {message}\n")
    return code


def message(args: list[str], explicit: str | None = None) -> int:
    if args and args[0] in ("-h", "--help"):
        sys.stdout.write(USAGE + "\n")
        return 0
    if args and args[0] == "--":
        args = args[1:]
    if args:
        text = " ".join(args)
    elif not sys.stdin.isatty():
        data = sys.stdin.buffer.read(inbox.MAX_TEXT + 1)
        if len(data) > inbox.MAX_TEXT:
            return _fail(f"the message is larger than {inbox.MAX_TEXT >> 20} MiB: put it in a file and send its path", 2)
        text = data.decode("utf-8", "surrogateescape")
    else:
        return _fail("nothing to say: " + USAGE, 2)
    named, body = split_prefix(text.strip())
    if not body:
        return _fail("the message is empty: " + USAGE, 2)
    env_task = os.environ.get("ORCH_TASK") or None
    spool = os.environ.get("ORCH_SPOOL")  # a sandboxed worker: its own spool is its one way to orch, and says who it is
    token = "" if spool else os.environ.get("ORCH_WORKER_TOKEN") or ""
    if spool:
        ws = None
    else:
        try:
            ws = find(explicit=explicit)
        except OrchError as exc:
            return _fail(str(exc))
    record = worker_record("message", named or env_task or "", body, token)
    if (spool or token) and env_task and named and named != env_task:
        record.update(status="refused", note=f"worker of task {env_task} may not speak for task {named}")
        try:  # kept for the log; the refusal stands even if it cannot be
            if spool:
                inbox.spool_write(spool, record)
            elif ws is not None:
                inbox.write(ws, record)
        except OSError:
            pass
        return _fail(f"refused: this worker belongs to task {env_task!r} and cannot speak for task {named!r}")
    if spool:
        return _spool(spool, record)
    assert ws is not None
    if not record["task"]:
        return _fail("which task? start the message with `task-<slug>:` (inside a worker, $ORCH_TASK says it)", 2)
    return _submit(ws, record)


def worker_record(kind: str, task: str, text: str, token: str) -> dict:
    """A spool record, with the sending worker as its environment names it (empty for a person)."""
    return {
        "kind": kind,
        "task": task,
        "text": text,
        "token": token,
        "worker": os.environ.get("ORCH_WORKER", ""),
        "role": os.environ.get("ORCH_ROLE", ""),
    }


def _spool(folder: str, record: dict) -> int:
    """A sandboxed worker's record, into its own spool (its host hands it on to orch)."""
    try:
        inbox.spool_write(folder, record)
    except OSError as exc:
        return _fail(f"could not store the message ({exc.strerror or exc}) in {folder}: nothing was recorded")
    return 0


def _submit(ws: Workspace, record: dict) -> int:
    """Spool a record and start the applier. A person's record (no token) must name an existing task."""
    if not record["token"]:
        try:
            problem = _missing_task(ws, record["task"])
        except OrchError as exc:  # the config cannot be read
            return _fail(str(exc))
        if problem:
            return _fail(problem)
    try:
        inbox.write(ws, record)
    except OSError as exc:
        return _fail(f"could not store the message ({exc.strerror or exc}) in {ws.inbox_new}: nothing was recorded; "
                     "free some space (or fix the folder) and send it again")
    kick(ws)
    return 0


def verdict(args: list[str], explicit: str | None = None) -> int:
    """`orch verdict approve|request-changes`: the reviewer's answer, findings on stdin."""
    from orch.verdicts import FindingError, format_finding, parse_decision, parse_findings

    if not args or args[0] in ("-h", "--help"):
        sys.stdout.write(VERDICT_USAGE + "\n")
        return 0 if args else 2
    task = None
    rest = []
    i = 0
    while i < len(args):
        if args[i] == "--task" and i + 1 < len(args):
            task, i = args[i + 1], i + 2
        elif args[i].startswith("--task="):
            task, i = args[i].split("=", 1)[1], i + 1
        else:
            rest.append(args[i])
            i += 1
    if not rest:
        return _fail(VERDICT_USAGE, 2)
    try:
        decision = parse_decision(rest[0])
        # findings: arguments, else stdin (read with a deadline: an agent's tool may leave stdin open)
        text = "\n".join(rest[1:]) if len(rest) > 1 else _read_stdin_bounded()
        findings = parse_findings(text)
    except FindingError as exc:
        return _fail(f"{exc}; nothing was recorded", 2)
    said = decision + "\n" + "\n".join(format_finding(f, brackets=True) for f in findings)
    spool = os.environ.get("ORCH_SPOOL")  # a sandboxed worker
    token = "" if spool else os.environ.get("ORCH_WORKER_TOKEN") or ""
    env_task = os.environ.get("ORCH_TASK") or None
    if spool or token:  # a worker (orch checks who it is again when it applies the verdict)
        if os.environ.get("ORCH_ROLE") != "reviewer":
            return _fail("only a task's reviewer gives verdicts (this is its " + os.environ.get("ORCH_ROLE", "?") + ")")
        if task and env_task and task != env_task:
            return _fail(f"refused: this reviewer belongs to task {env_task!r}, not {task!r}")
    task = task or env_task
    if spool:
        return _spool(spool, worker_record("verdict", task or "", said, ""))
    try:
        ws = find(explicit=explicit)
    except OrchError as exc:
        return _fail(str(exc))
    if not task:
        return _fail("which task? give --task SLUG (inside a reviewer, $ORCH_TASK says it)", 2)
    if not token:
        try:
            problem = _missing_task(ws, task) or _no_review(ws, task)
        except OrchError as exc:  # the config cannot be read
            return _fail(str(exc))
        if problem:
            return _fail(problem)
    return _submit(ws, worker_record("verdict", task, said, token))


def _tasks_dir(ws: Workspace) -> str:
    folder = cached_tasks_dir(ws)
    if folder is None:
        full_python()
        from orch.config import load

        folder = load(ws).tasks_path
    return folder


def _missing_task(ws: Workspace, task: str) -> str | None:
    if not is_valid(task):
        return f"{task!r} is not a valid task name"
    folder = _tasks_dir(ws)
    if os.path.isfile(os.path.join(folder, task + ".md")):
        return None
    return f"no task {task!r} in {folder}: `orch status` lists the tasks"


def _no_review(ws: Workspace, task: str) -> str | None:
    """Why a person's verdict for ``task`` cannot count now (no review in progress), or None."""
    from orch.blockmarks import state_in

    try:
        with open(os.path.join(_tasks_dir(ws), task + ".md"), "rb") as fh:
            state = state_in(fh.read(2 << 20).decode("utf-8", "replace"))
    except OSError as exc:
        return f"cannot read task {task!r}: {exc.strerror or exc}"
    if state == "reviewing":
        return None
    return (f"no review is in progress for task {task!r} (it is {state}): a verdict counts only while the task "
            "is reviewing; nothing was recorded (`orch status` shows where it is)")


def kick(ws: Workspace) -> None:
    """Apply the inbox now, in a detached child, unless a daemon is running (it applies messages itself)."""
    if os.environ.get("ORCH_NO_APPLY") or daemon_running(ws):
        return
    try:
        pid = os.fork()
    except OSError:
        return  # the next scan applies the message
    if pid:
        return
    try:
        os.setsid()
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        from orch.locks import hold

        # only one applier at a time; one that finds the lock taken leaves: the holder looks again after release
        with hold(os.path.join(ws.locks, "inbox.lock"), wait=0) as got:
            if not got:
                os._exit(0)
            full_python()
            from orch.workflow.context import Ctx
            from orch.workflow.inbox import drain, drain_locked

            ctx = Ctx(ws)
            drain_locked(ctx)
        if inbox.pending(ws):
            drain(ctx, wait=0)
    except BaseException as exc:  # noqa: BLE001 - a background child must never raise into anything
        try:
            fd = os.open(os.path.join(ws.logs, "applier.log"), os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW,
                         0o600)
            with open(fd, "a", encoding="utf-8") as fh:
                fh.write(f"{type(exc).__name__}: {exc}\n")
        except OSError:
            pass
    finally:
        os._exit(0)


HOOK_STDIN_LIMIT = 1 << 20
HOOK_STDIN_WAIT = 0.5


def _read_stdin_bounded() -> str:
    """The hook's payload from stdin, without ever blocking the agent: give up after a short wait or 1 MiB."""
    import select

    if sys.stdin is None or sys.stdin.isatty():
        return ""
    fd = sys.stdin.fileno()
    chunks: list[bytes] = []
    size = 0
    while size < HOOK_STDIN_LIMIT:
        ready, _, _ = select.select([fd], [], [], HOOK_STDIN_WAIT)
        if not ready:
            break
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks).decode("utf-8", "replace")


def hook(args: list[str], explicit: str | None = None) -> int:
    """`orch hook <event> [payload]`: an agent's hook fired. Always exits 0: a hook must never fail or block the
    agent's action; problems go to .orch/logs/hooks.log."""
    ws = None
    try:
        if not args or args[0] in ("-h", "--help"):
            sys.stdout.write("usage: orch hook <event> [payload]   (payload JSON on stdin or as an argument)\n")
            return 0
        event = args[0]
        payload = args[-1] if len(args) > 1 else _read_stdin_bounded()
        spool = os.environ.get("ORCH_SPOOL")
        if spool:
            inbox.spool_write(spool, worker_record("hook", os.environ.get("ORCH_TASK") or "",
                                                   event + "\n" + payload[:HOOK_STDIN_LIMIT], ""))
            return 0
        ws = find(explicit=explicit)
        token = os.environ.get("ORCH_WORKER_TOKEN") or ""
        task = os.environ.get("ORCH_TASK") or ""
        if not token or not task:
            raise OrchError(f"hook {event!r} outside an orch worker (no ORCH_WORKER_TOKEN/ORCH_TASK)")
        inbox.write(ws, worker_record("hook", task, event + "\n" + payload[:HOOK_STDIN_LIMIT], token))
        kick(ws)
    except BaseException as exc:  # noqa: BLE001 - never fail the agent's action
        hook_problem(ws, f"{type(exc).__name__}: {exc}")
    return 0


def hook_problem(ws: Workspace | None, text: str) -> None:
    """One time-stamped line in ``.orch/logs/hooks.log``: what went wrong where nothing may fail (a hook, a worker's
    host)."""
    try:
        folder = ws.logs if ws is not None else None
        if folder is None:
            return
        os.makedirs(folder, exist_ok=True)
        fd = os.open(os.path.join(folder, "hooks.log"), os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        with open(fd, "a", encoding="utf-8") as fh:
            fh.write(f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} {text}\n")
    except OSError:
        pass
