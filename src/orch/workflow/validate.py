"""Validation: orch runs the task's validation commands itself, in the worktree, and keeps the evidence."""

from __future__ import annotations

import os
import time

from orch import proc
from orch.files import atomic_write
from orch.store import Validation
from orch.workflow import tasks as T
from orch.workflow.context import Ctx
from orch.workflow.intent import Intent

TAIL_LINES = 20


def commands_for(ctx: Ctx, intent: Intent) -> tuple[list[str], str]:
    """(commands, source): the task's Validation section, else ``[validate] commands``, else none."""
    if intent.validation:
        return intent.validation, "task"
    if ctx.cfg.validate_.commands:
        return list(ctx.cfg.validate_.commands), "config"
    return [], "none"


def tail(output: bytes, lines: int = TAIL_LINES) -> str:
    text = output.decode("utf-8", "replace").replace("\r\n", "\n").rstrip("\n")
    return "\n".join(text.split("\n")[-lines:])


def run(ctx: Ctx, task: T.Task, intent: Intent, round_no: int, sha: str, worktree: str) -> list[Validation]:
    """Run every validation command (even after a failure, so the coder sees all of them); record each run."""
    commands, source = commands_for(ctx, intent)
    folder = ctx.ws.path("runs")
    os.makedirs(folder, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCH_WORKER_TOKEN")}
    results = []
    for n, command in enumerate(commands, 1):
        ran = proc.run_shell(command, worktree, ctx.cfg.validate_.timeout, env)
        log_path = os.path.join(folder, f"{task.slug}-r{round_no}-{sha[:12]}-{n}.log")
        header = f"$ {command}\n# cwd {worktree}, exit {ran.exit_code}, {ran.duration:.2f}s\n".encode()
        atomic_write(log_path, header + ran.output, mode=0o600)
        v = Validation(
            id=0,
            task=task.slug,
            round=round_no,
            sha=sha,
            command=command,
            source=source,
            exit_code=ran.exit_code,
            duration=round(ran.duration, 3),
            timed_out=int(ran.timed_out),
            tail=tail(ran.output),
            log_path=log_path,
            at=time.time(),
        )
        ctx.store.add_validation(v)
        shown = "timed out" if ran.timed_out else f"exit {ran.exit_code}"
        ctx.event("validate", f"{command!r}: {shown} in {ran.duration:.1f}s", task=task.slug)
        results.append(v)
    return results
