"""`orch init` and `orch add`."""

from __future__ import annotations

import json
import os
import re

from orch import git, launcher
from orch import slug as slugs
from orch.config import DEFAULT_CONFIG
from orch.errors import OrchError
from orch.files import atomic_write
from orch.store import Store
from orch.workflow.context import Ctx
from orch.workspace import STATE_DIR, Workspace

FOLDERS = ("tasks", "tasks/done", "dossiers", "logs", "prompts", "runs", "inbox/new", "inbox/tmp", "locks")


def init(path: str) -> tuple[Workspace, list[str]]:
    """Prepare the repository containing ``path``. Harmless to run again. Returns the workspace and what it did."""
    root = git.toplevel(path)
    if root is None:
        raise OrchError(f"{os.path.abspath(path)} is not inside a git repository: run `git init` first, or cd into one")
    ws = Workspace(root)
    did: list[str] = []
    if not os.path.isdir(ws.state):
        did.append(f"created {ws.state}")
    for folder in FOLDERS:
        os.makedirs(ws.path(folder), exist_ok=True)
    os.chmod(ws.state, 0o755)
    if not os.path.exists(ws.config_file):
        atomic_write(ws.config_file, DEFAULT_CONFIG.encode("utf-8"), mode=0o644)
        did.append(f"wrote {ws.config_file}")
    if not os.path.exists(os.path.join(ws.state, "workspace")):
        did.append(f"workspace id {ws.id}")
    Store(ws.db_file, ws.id).close()
    launcher.ensure(ws.state)
    ctx = Ctx(ws)
    for folder in (ctx.cfg.tasks_path, ctx.cfg.done_path):
        os.makedirs(folder, exist_ok=True)
    patterns = [f"/{STATE_DIR}/"]
    wt_root = ctx.cfg.worktree_path
    rel = os.path.relpath(wt_root, root)
    if not rel.startswith(".."):
        patterns.append(f"/{rel}/")
    added = git.add_exclude(root, patterns)
    if added:
        did.append(f"added {', '.join(added)} to .git/info/exclude")
    return ws, did


TEMPLATE = """<!-- orch add: write the task below; its first line names it. The sections orch recognises (keep the
ones you need, delete the others): Requirements, Invariants, Non-goals, Escalate if, and Validation (one command
per bullet, run in the worktree). This comment is removed; save an empty task to cancel. -->


## Requirements
-

## Validation
-
"""


def written_in_editor() -> str:
    """A task written in your editor, from TEMPLATE (in a private temporary folder); what you wrote of it."""
    import tempfile

    from orch import proc

    with tempfile.TemporaryDirectory(prefix="orch-add-") as tmp:
        draft = os.path.join(tmp, "task.md")
        with open(draft, "w", encoding="utf-8") as fh:
            fh.write(TEMPLATE)
        proc.edit(draft)
        with open(draft, encoding="utf-8", errors="replace") as fh:
            return from_template(fh.read())


def from_template(text: str) -> str:
    """What the person wrote in the template: its comment, empty bullets and sections left empty removed."""
    text = re.sub(r"<!-- orch add:.*?-->\n?", "", text, flags=re.S)
    lines = [line for line in text.split("\n") if line.strip() not in ("-", "*")]
    kept: list[str] = []
    for i, line in enumerate(lines):
        if line.startswith("#"):
            rest = next((x for x in lines[i + 1 :] if x.strip()), "#")
            if rest.startswith("#"):
                continue  # a heading with nothing under it
        kept.append(line)
    return re.sub(r"\n{3,}", "\n\n", "\n".join(kept)).strip() + "\n"


def split_front(text: str) -> tuple[list[str], str]:
    """(the lines of a text's own front matter, the rest): a task piped to `orch add -` may bring its own."""
    if text.startswith("---\n"):
        end = text.find("\n---\n", 3)
        if end != -1:
            return [line for line in text[4:end].split("\n") if line.strip()], text[end + 5 :]
    return [], text


def add(ctx: Ctx, text: str, slug: str | None = None, agent: str | None = None, hold: bool = False) -> str:
    """Write a new task file; returns its path. ``hold``: it stays queued until `orch start`."""
    if not text.strip():
        raise OrchError("the task text is empty: nothing was added (orch add \"what to do\", or orch add - < file)")
    folder = ctx.cfg.tasks_path
    os.makedirs(folder, exist_ok=True)
    if agent is not None:
        ctx.cfg.profile(agent)  # refuses an unknown agent now rather than at spawn time
    if slug is None:
        taken = {n[:-3] for n in os.listdir(folder) if n.endswith(".md")}
        taken |= {n[:-3] for n in os.listdir(ctx.cfg.done_path)} if os.path.isdir(ctx.cfg.done_path) else set()
        own, rest = split_front(text)
        title = next((line.lstrip("#").strip() for line in rest.splitlines() if line.strip()), rest)
        slug = slugs.derive(title, taken)  # from its first line, the task's title
    else:
        slugs.check(slug)
    path = os.path.join(folder, slug + ".md")
    own, rest = split_front(text if text.endswith("\n") else text + "\n")
    given = {line.split(":", 1)[0].strip() for line in own}
    front = [*own, *([f"agent: {json.dumps(agent)}"] if agent is not None and "agent" not in given else []),
             *(["hold: true"] if hold and "hold" not in given else [])]
    if agent is not None and "agent" in given:
        raise OrchError("the task's front matter names its agent already: leave out --agent, or change it there")
    body = ("---\n" + "\n".join(front) + "\n---\n\n" + rest.lstrip("\n")) if front else rest
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        raise OrchError(f"task {slug!r} already exists ({path}); choose another --slug") from None
    with os.fdopen(fd, "wb") as fh:
        fh.write(body.encode("utf-8"))
    ctx.event("add", f"task written: {path}", task=slug)
    return path
