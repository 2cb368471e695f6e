"""Many hosts: commands for a task on a host. Where it runs; a command (`orch send`, `reply`, `capture`, `exec`,
`retry`) run by its host's orch, in its clone, with that orch's own checks; a round after its host was done with
it (a pull request's, a failed train's, a retry) handed back to that host; `orch attach` over SSH; `orch close`
ending its run there. The dashboards use ``on_host`` for the same."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from typing import Any

from orch.errors import OrchError
from orch.files import atomic_write
from orch.lifecycle import Move
from orch.record import replace
from orch.store.fleet import HostedRow
from orch.workflow import tasks as T
from orch.workflow.context import Ctx
from orch.workflow.fleet import hosts, names, on, run_async


def where(ctx: Ctx, slug: str, running: bool = False) -> HostedRow | None:
    """The task's host: where its workers are (after it is ready too: its coder waits there, as on one machine);
    ``running``: only while the host has the task in hand."""
    if not on(ctx):
        return None
    row = ctx.store.hosted(slug)
    return row if row is not None and row.host and not (running and row.ended) else None


KEEP = 14 * 86400.0  # seconds a close waits for a host that is away


def route(ctx: Ctx, row: HostedRow, args: list[str], timeout: float = 60.0, keep: bool = False,
          wait: float = 10.0) -> dict:
    """`orch ARGS` run by the task's host's orch, in its clone (the same command, the same checks); its exit code
    and output. ``keep``: a host that is away runs it once it is back (for up to KEEP); the answer is then
    ``{"code": None}``, said after 10 seconds at most. ``wait``: seconds a host has to take the command (else
    it is not answering)."""

    from orch.fleet import workflows as wf

    if not row.host:
        raise OrchError(f"{row.task} is not on a host yet (waiting for one): try again once `orch status` shows it")
    queue = wf.host_queue(ctx.cfg.cluster.name, row.host)
    req = {"queue": queue, "slug": row.task, "args": args, "timeout": timeout, "wait": KEEP if keep else wait}

    async def call(client: Any) -> dict:  # noqa: ANN401
        from orch.fleet import engine

        got = await engine.run_workflow(client, "orch.route", req, names(ctx)["shared_queue"],
                                        timeout + 60 + (KEEP if keep else 0), wait=min(timeout, 10) if keep else None)
        return {"code": None, "out": "", "err": ""} if got is None else got

    try:
        return run_async(ctx, call)
    except OrchError:
        raise
    except Exception as exc:  # noqa: BLE001 - the engine's errors, said in one line
        raise OrchError(f"host {row.host} did not answer for {row.task}: {getattr(exc, 'cause', None) or exc}") from None


def on_host(ctx: Ctx, slug: str, args: list[str], running: bool = False) -> str | None:
    """For the dashboards: `orch ARGS` for a task on a host, run by its host's orch; what it said (an error as one
    line), or None when the task is not on a host (the action runs here). ``running``: only while its host has it
    in hand (a retry)."""
    row = where(ctx, slug, running)
    if row is None:
        return None
    return _said(route(ctx, row, args), row).strip() or f"done on host {row.host}"


def screen(ctx: Ctx, address: str, lines: int) -> str | None:
    """For the dashboards: the live screen of a worker (``task`` for its coder, ``task:role``) of a task on a host,
    with its colours (`orch capture --color`, run by its host's orch, its text checked again here); None when the
    task is not on a host."""
    from orch.terminal import colours_only

    row = where(ctx, address.split(":", 1)[0])
    if row is None:
        return None
    got = _said(route(ctx, row, ["capture", address, "-n", str(lines), "--color"], timeout=20, wait=3), row)
    return colours_only(got.rstrip("\n"))


def _said(got: dict, row: HostedRow) -> str:
    """What a command run by a host's orch printed; its error as one line."""
    if got.get("code"):
        err = str(got.get("err", "")).strip().splitlines()
        raise OrchError((err[-1] if err else f"exit {got.get('code')}").removeprefix("orch: ") + f" (on host {row.host})")
    return str(got.get("out", ""))


def round_here(ctx: Ctx, slug: str) -> HostedRow | None:
    """The task's host, when a round for the task goes there: its copy waits on that host (ready, or blocked),
    its coder with it, as on one machine."""
    row = where(ctx, slug)
    return row if row is not None and row.ended else None


def hand_round(ctx: Ctx, task: T.Task, row: HostedRow, text: str, round_no: int, move: Move | None = None,
               summary: Mapping[str, str | None] | None = None) -> str:
    """A round for a task whose copy waits on its host (a pull request's round, a failed train, a retry): the task's
    workflow started again on that host (preferred while it is live), whose orch sends its coder the fix request
    (``text``; none: the branch validated and reviewed again) and reports as before. The round is kept in
    ``.orch/fleet-rounds/`` until the cluster has it: a round the cluster cannot take now (its server away, the
    task's last run still finishing) is handed over by a later pass, and the task stays with its host meanwhile.
    ``move``: the task's move here. Returns how it went."""
    pending = {"text": text, "round": round_no}
    os.makedirs(ctx.ws.path(ROUNDS), mode=0o700, exist_ok=True)
    atomic_write(_round_file(ctx, task.slug), json.dumps(pending).encode(), mode=0o600)
    ctx.store.put_hosted(replace(row, ended=False, at=time.time()))  # the host has it again: the pass leaves it be
    if move is not None:
        T.move(ctx, task.slug, move.to, move.event, move.actor, summary=summary)
    T.record(ctx, task.slug, status=f"round {round_no} handed to host {row.host}, where its copy waits"
                                   + ("" if text else ": validated and reviewed again there"))
    why = _start_round(ctx, task, row, pending)
    return f"sent to host {row.host}" if not why else f"waits for the cluster ({why})"


ROUNDS = "fleet-rounds"  # in .orch: the rounds for tasks on hosts the cluster has not taken yet, one file each


def _round_file(ctx: Ctx, slug: str) -> str:
    return ctx.ws.path(ROUNDS, slug + ".json")


def _start_round(ctx: Ctx, task: T.Task, row: HostedRow, pending: dict) -> str:
    """The task's workflow started again with its pending round (kept in its file); "" once the cluster has it
    (the file removed), else why not (said once in the log; the file stays for a later pass)."""
    from orch.workflow import prompts
    from orch.workflow.fleet import spec_for

    path = _round_file(ctx, task.slug)
    spec = spec_for(ctx, task)
    spec["want"]["prefer"] = row.host  # its copy is there (elsewhere, if that host is gone: from its pushed work)
    spec.update(run_base=row.run, round={"text": str(pending.get("text", "")), "round": int(pending.get("round", 0)),
                                         "orch": prompts.orch_command(ctx)})

    async def start(client: Any) -> None:  # noqa: ANN401
        from orch.fleet import engine

        await engine.start_anew(client, "orch.task", row.workflow, spec, spec["shared_queue"], wait=5.0)

    try:
        run_async(ctx, start)
    except Exception as exc:  # noqa: BLE001 - the engine's errors, in one line: a later pass tries again
        why = str(exc) if isinstance(exc, OrchError) else f"{type(exc).__name__}: {exc}"
        if pending.get("why") != why:
            ctx.event("fleet", f"round {pending.get('round')} for {task.slug} waits for the cluster: {why}",
                      task=task.slug)
            atomic_write(path, json.dumps({**pending, "why": why}).encode(), mode=0o600)
        return why
    os.unlink(path)
    ctx.event("fleet", f"workflow {row.workflow} started again for round {pending.get('round')} on host {row.host}",
              task=task.slug)
    return ""


def resend_rounds(ctx: Ctx, tasks: Mapping[str, T.Task]) -> None:
    """A pass: the rounds the cluster could not take when they were made, handed over again (a round for a task
    closed since is dropped)."""
    try:
        names = sorted(os.listdir(ctx.ws.path(ROUNDS)))
    except FileNotFoundError:
        return
    for name in names:
        slug, path = name.removesuffix(".json"), ctx.ws.path(ROUNDS, name)
        row = ctx.store.hosted(slug)
        try:
            with open(path, encoding="utf-8") as fh:
                pending = json.load(fh)
        except (OSError, ValueError):
            pending = None
        if slug not in tasks or row is None or not isinstance(pending, dict):
            os.unlink(path)
            continue
        _start_round(ctx, tasks[slug], row, pending)


def attach(ctx: Ctx, row: HostedRow, worker: str) -> None:
    """`orch attach` for a worker on a host: its host's `orch attach` over SSH when the host said how to reach it
    (`orch host --ssh`), else the command to run there."""
    import shlex

    found = {h.name: h for h in hosts(ctx)[0]}
    h = found.get(row.host)
    if h is None or not h.clone:
        raise OrchError(f"{row.task} is on host {row.host or '(none yet)'}, which the cluster does not list now")
    remote = ["orch", "-C", h.clone, "attach", worker]
    if not h.ssh:
        raise OrchError(f"{worker} runs on host {h.name}: attach there with `{shlex.join(remote)}` (or start that host "
                        "with --ssh user@machine to attach from here)")
    # ssh hands its words to the remote shell: each one quoted, none built from raw text
    os.execvp("ssh", ["ssh", "-t", "--", h.ssh, shlex.join(remote)])


def close(ctx: Ctx, row: HostedRow) -> str:
    """The person closes a task on a host: its workflow ends its run there (the host closes its own copy), or,
    once the host is done with it, its host's orch closes its copy (its workers and worktree there); a host that is
    away does it once it is back. Returns what became of the host's copy, in a line."""

    async def signal(client: Any) -> None:  # noqa: ANN401
        from orch.fleet import engine

        await engine.signal(client, row.workflow, "close")

    said = ""
    try:
        if row.ended and row.host:
            got = route(ctx, row, ["close", row.task, "--force"], timeout=30, keep=True)
            if got.get("code") is None:
                said = f"host {row.host} does not answer now: it closes its copy of {row.task} once it is back"
            elif got.get("code"):
                raise OrchError(str(got.get("err", "")).strip())
            else:
                said = f"closed its copy on host {row.host}"
        else:
            run_async(ctx, signal)
            said = f"its run on host {row.host} ends (the host closes its copy)" if row.host else ""
    except Exception as exc:  # noqa: BLE001 - the person's close goes on; the host's copy is said in the log
        said = (f"could not close {row.task} on host {row.host or '(none yet)'}: {exc}; close it there with "
                f"`orch close {row.task} --force` in the host's clone")
    if said:
        ctx.event("fleet", said, task=row.task)
    drop_wip(ctx, row.task)
    ctx.store.drop_hosted(row.task)
    return said


def drop_wip(ctx: Ctx, slug: str) -> None:
    """A closed task's work in progress, kept on its branch here (made from it when there is none yet: the work of a
    task closed before it was ready), then deleted from the cluster's remote and from here (``wip.delete``). What
    cannot be kept or deleted now is said in the log, and the ref stays."""
    from orch.fleet import wip

    remote, branch = ctx.cfg.cluster.remote, T.branch_of(ctx, slug)
    why = wip.keep_on_branch(ctx.ws.root, remote, slug, branch)
    if why == "made":
        ctx.store.add_made("branch", branch, slug)
    elif why:
        ctx.event("fleet", f"kept {wip.wip_ref(slug)} on {remote}: {why}", task=slug)
        return
    why = wip.delete(ctx.ws.root, remote, slug)
    if why:
        ref = wip.wip_ref(slug)
        ctx.event("fleet", f"could not delete {ref} from {remote} ({why}): delete it with `git push {remote} :{ref}`",
                  task=slug)
