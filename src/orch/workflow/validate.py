"""Validation: which commands orch runs for a task (they run in a background job, orch/jobrunner.py, in the
worktree), and the evidence they leave."""

from __future__ import annotations

from orch.store import Validation
from orch.workflow.context import Ctx
from orch.workflow.intent import Intent


def commands_for(ctx: Ctx, intent: Intent) -> tuple[list[str], str]:
    """(commands, source): the task's Validation section, else ``[validate] commands``, else none."""
    if intent.validation:
        return intent.validation, "task"
    if ctx.cfg.validate_.commands:
        return list(ctx.cfg.validate_.commands), "config"
    return [], "none"


def record(ctx: Ctx, slug: str, round_no: int, sha: str, source: str, results: list[dict]) -> list[Validation]:
    """The runs of a validation job (orch/jobrunner.py), into the store: the evidence of the dossier."""
    out = []
    for r in results:
        v = Validation(id=0, task=slug, round=round_no, sha=sha, command=r["command"], source=source,
                       exit_code=int(r["exit_code"]), duration=float(r["duration"]), timed_out=int(bool(r["timed_out"])),
                       tail=str(r["tail"]), log_path=str(r["log"]), at=float(r["at"]))
        ctx.store.add_validation(v)
        shown = "timed out" if v.timed_out else f"exit {v.exit_code}"
        ctx.event("validate", f"{v.command!r}: {shown} in {v.duration:.1f}s", task=slug)
        out.append(v)
    return out
