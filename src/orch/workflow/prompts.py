"""Prompts orch gives to workers."""

from __future__ import annotations

import os

from orch.workflow.context import Ctx

REPORTING = """\
Report to orch with the `orch` command (it is on your PATH; your task is known from the environment):
- orch - "done: <one-line summary>"       when your work is committed on the branch and ready for review
- orch - "needs input: <question>"        when you need an answer from the person (then wait for it)
- orch - "blocked: <why>"                 when you cannot go on
- orch - "<text>"                         for any other progress note"""


def coder_prompt(slug: str, body: str, worktree: str, branch: str, base: str) -> str:
    return (
        f"# Task {slug}\n\n"
        f"You are the coder for task `{slug}`.\n"
        f"- worktree: {worktree} (work only inside this folder)\n"
        f"- branch: {branch} (based on {base}); commit your work on it, do not merge or push elsewhere\n\n"
        f"## The task, as the person wrote it\n\n{body.strip()}\n\n"
        f"## Reporting\n\n{REPORTING}\n"
    )


def save(ctx: Ctx, slug: str, role: str, text: str, round_no: int = 1) -> str:
    folder = ctx.ws.path("prompts")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"{slug}-{role}-{round_no}.md")
    from orch.taskfile import atomic_write

    atomic_write(path, text.encode("utf-8"), mode=0o600)
    return path
