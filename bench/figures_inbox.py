"""Figure 4, the inbox under load: W concurrent writers (processes, as workers are) x M messages each,
`orch.inbox.write` as `orch -` does it, spread over a few tasks (queued, never started), while `orch run` applies
them. Reported: messages/second written, messages/second applied (until every message is applied and the spool is
empty), lost (a written uid not applied, or its status line missing from the task file) and duplicated (a uid twice
in the database, or a status line twice in a task file). Every text is unique (the task file dedupes identical lines
of the same second)."""

from __future__ import annotations

import os
import re
import time
from collections import Counter

from common import NEVER_STARTED, BenchError, Space, quiet

TASKS = 4
MARK = re.compile(r"\bbench-msg (\d+)-(\d+)-([0-9a-f]+)\b")


def inbox(space: Space, writers: int, per_writer: int, timeout: float) -> list[tuple[str, str, str, str]]:
    import orch.inbox
    from orch.taskfile import parse
    from orch.workspace import Workspace as OrchWorkspace

    slugs = [f"m{i}" for i in range(TASKS)]
    for slug in slugs:
        space.write_task(slug, NEVER_STARTED + "a task that receives the bench's messages\n")
    nonce = os.urandom(3).hex()
    daemon = space.start_daemon()
    try:
        quiet(daemon, window=0.3, limit=15)
        uids, start, written_s = _write_from_processes(space, writers, per_writer, slugs, nonce)
        expected = set(uids)
        total = writers * per_writer

        ws = OrchWorkspace(str(space.repo))
        deadline = time.monotonic() + timeout
        applied = 0
        with space.db() as db:
            while True:
                applied = db.execute("SELECT COUNT(*) FROM messages WHERE status = 'applied' AND task IN "
                                     f"({','.join('?' * TASKS)})", slugs).fetchone()[0]
                if applied >= total and not orch.inbox.pending(ws):
                    break
                if time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            applied_s = time.perf_counter() - start
            rows = db.execute("SELECT uid, status FROM messages WHERE task IN "
                              f"({','.join('?' * TASKS)})", slugs).fetchall()
    finally:
        space.stop_daemon()

    by_uid = Counter(uid for uid, _ in rows)
    applied_uids = {uid for uid, status in rows if status == "applied"}
    lost_db = len(expected - applied_uids)
    dup_db = sum(n - 1 for n in by_uid.values() if n > 1)
    lines: Counter[tuple[str, str]] = Counter()
    for slug in slugs:
        doc = parse((space.tasks / f"{slug}.md").read_text(encoding="utf-8"))
        for line in doc.status:
            found = MARK.search(line)
            if found and found.group(3) == nonce:
                lines[(found.group(1), found.group(2))] += 1
    lost_file = sum(1 for k in range(writers) for i in range(per_writer) if lines[(str(k), str(i))] == 0)
    dup_file = sum(n - 1 for n in lines.values() if n > 1)
    finished = applied >= total
    label = f"inbox: {writers} writers x {per_writer} messages"
    backlog = _backlog(space, slugs, writers * per_writer, timeout)
    return [
        (f"{label}, written (`orch.inbox.write`)", f"{total / written_s:.0f} msg/s", "—",
         f"{total} messages in {written_s:.2f} s"),
        (f"{label}, applied by `orch run`", f"{applied / applied_s:.0f} msg/s", "—",
         (f"all applied {applied_s:.1f} s after the first write" if finished
          else f"NOT FINISHED: {applied}/{total} applied after {applied_s:.0f} s")
         + f", {applied_s - written_s:.1f} s after the last; lost {lost_db} (database), {lost_file} (task files); "
           f"duplicated {dup_db} (database), {dup_file} (task files); goal 2000 msg/s"),
        backlog,
    ]


def _write_from_processes(space: Space, writers: int, per_writer: int, slugs: list[str],
                          nonce: str) -> tuple[list[str], float, float]:
    """``writers`` processes (as workers' `orch -` are: one process each, not threads sharing one interpreter's lock),
    forked from this one and released together, each writing ``per_writer`` messages with ``orch.inbox.write``.
    Returns the uids they wrote, when they were released (``perf_counter``) and the seconds to the last one done."""
    import orch.inbox
    from orch.workspace import Workspace as OrchWorkspace

    folder = space.repo.parent / f"{space.name}-writers"
    folder.mkdir(exist_ok=True)
    gate_r, gate_w = os.pipe()
    pids = []
    for k in range(writers):
        pid = os.fork()
        if pid == 0:  # a writer: never returns
            code = 0
            try:
                os.close(gate_w)
                os.read(gate_r, 1)  # released when the bench closes its end
                with open(folder / f"{k}.uids", "w", encoding="utf-8") as out:
                    for i in range(per_writer):
                        record = {"kind": "message", "task": slugs[(k + i) % len(slugs)],
                                  "text": f"bench-msg {k}-{i}-{nonce} from writer {k}", "token": "", "worker": "",
                                  "role": ""}
                        out.write(orch.inbox.write(OrchWorkspace(str(space.repo)), record) + "\n")
            except BaseException as exc:  # noqa: BLE001 - reported by the bench
                with open(folder / f"{k}.error", "w", encoding="utf-8") as err:
                    err.write(f"writer {k}: {type(exc).__name__}: {exc}\n")
                code = 1
            os._exit(code)
        pids.append(pid)
    os.close(gate_r)
    time.sleep(0.3)  # every writer forked and waiting
    start = time.perf_counter()
    os.close(gate_w)
    for pid in pids:
        os.waitpid(pid, 0)
    written_s = time.perf_counter() - start
    errors = [p.read_text(encoding="utf-8").strip() for p in sorted(folder.glob("*.error"))]
    if errors:
        raise BenchError("bench (inbox): " + "; ".join(errors[:3]))
    uids = [u for k in range(writers) for u in (folder / f"{k}.uids").read_text(encoding="utf-8").split()]
    return uids, start, written_s


def _backlog(space: Space, slugs: list[str], total: int, timeout: float) -> tuple[str, str, str, str]:
    """The applier alone: ``total`` messages written while no daemon runs, then `orch run` started; the time from
    its start to the last one applied (its start-up and first pass included)."""
    import orch.inbox
    from orch.workspace import Workspace as OrchWorkspace

    ws = OrchWorkspace(str(space.repo))
    for i in range(total):
        orch.inbox.write(ws, {"kind": "message", "task": slugs[i % len(slugs)], "text": f"backlog {i}",
                              "token": "", "worker": "", "role": ""})
    with space.db() as db:
        before = db.execute("SELECT COUNT(*) FROM messages WHERE status = 'applied'").fetchone()[0]
    start = time.perf_counter()
    space.start_daemon()
    try:
        deadline = time.monotonic() + timeout
        with space.db() as db:
            while time.monotonic() < deadline:
                done = db.execute("SELECT COUNT(*) FROM messages WHERE status = 'applied'").fetchone()[0] - before
                if done >= total and not orch.inbox.pending(ws):
                    break
                time.sleep(0.05)
        took = time.perf_counter() - start
    finally:
        space.stop_daemon()
    return (f"inbox: a backlog of {total} messages, applied by `orch run` from its start", f"{done / took:.0f} msg/s",
            "—", f"{done}/{total} applied in {took:.1f} s (start-up and first pass included); goal 2000 msg/s")
