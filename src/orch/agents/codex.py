"""Codex (``kind = "codex"``).

- coder: ``--no-daemon --sandbox workspace-write -a never`` plus ``--add-dir`` for the repository's git directory
  and the worktree's own git directory (commits; the sandbox keeps ``.git`` read-only otherwise) and orch's
  state folder (``orch -``); reviewer: ``--sandbox read-only -a never`` (it cannot write anywhere, so its verdict
  is read from its final message).
- ``-c notify=[<orch>, "hook", "codex-notify"]``: the turn's end, with the session (thread) id and the final
  message; notifications of Codex's own task-title side request are ignored. ``resume <id>`` continues a session.
- dialogs: the folder-trust question is pre-answered in ``~/.codex/config.toml``.
"""

from __future__ import annotations

import json
import os

from orch.agents import hooks
from orch.agents.base import Agent, Launch, LaunchRequest
from orch.agents.profile import AgentProfile
from orch.files import atomic_write
from orch.locks import hold

TITLE_PREFIX = "Generate a concise, single-line task title"


class Codex(Agent):
    kind = "codex"
    install = "npm install -g @openai/codex"
    can_resume = True

    def profiles(self) -> dict[str, AgentProfile]:
        return {"codex": AgentProfile.builtin(
            name="codex",
            kind="codex",
            command=["codex"],
            prompt="paste",
            ready_pattern=r"^› ",
            ready_timeout=60.0,
            enter_delay=0.5,
            hooks=True,
            prompt_hook=False,
            screen_idle=r"^› ",
            screen_working=r"esc to interrupt",
            screen_waiting=r"Allow command\?|Approve|\[y/N\]",
            confirm_timeout=10.0,
        )}

    def launch(self, req: LaunchRequest) -> Launch:
        notify = json.dumps([req.orch_bin, "hook", "codex-notify"])
        first = ["resume", req.resume] if req.resume else []
        launch = Launch(args=[*first, "--no-daemon", "-c", f"notify={notify}", "-a", "never"], session=req.resume)
        if req.role == "reviewer":
            launch.args += ["--sandbox", "read-only"]
        elif req.spool:  # inside orch's sandbox, which confines it to its worktree and branch: Codex's own sandbox
            # (bubblewrap as well) cannot be nested in it (it makes mount points in the read-only git folder)
            launch.args += ["--sandbox", "danger-full-access"]
        else:
            launch.args += ["--sandbox", "workspace-write"]
            for folder in (*req.git_dirs, req.state_dir):  # commits write in the git dirs; `orch -` in .orch
                launch.args += ["--add-dir", folder]
        if req.profile.preanswer:
            preanswer(req.home, req.worktree)
        return launch

    def sandbox_write(self, req: LaunchRequest) -> list[str]:
        """Its state folder (sessions, config, logs)."""
        os.makedirs(os.path.join(req.home, ".codex"), exist_ok=True)
        return [os.path.join(req.home, ".codex")]

    def hook_state(self, event: str, payload: dict) -> str | None:
        if hooks.event_key(event) in ("codex-notify", "notify"):
            kind = str(payload.get("type", "")).lower()
            return "idle" if kind in ("agent-turn-complete", "turn-complete") else None
        return hooks.state_for(event)

    def side_thread(self, event: str, payload: dict) -> bool:
        """Codex also notifies for its task-title side request: not the worker's turn."""
        if hooks.event_key(event) not in ("codex-notify", "notify"):
            return False
        messages = payload.get("input-messages") or payload.get("input_messages") or []
        first = messages[0] if isinstance(messages, list) and messages else ""
        return isinstance(first, str) and first.startswith(TITLE_PREFIX)


def preanswer(home: str, worktree: str) -> None:
    """Trust the worktree in ``~/.codex/config.toml`` as Codex records it (a ``[projects."<path>"]`` table)."""
    path = os.path.join(home, ".codex", "config.toml")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with hold(path + ".orch-lock", wait=10):
        try:
            with open(path, encoding="utf-8") as fh:
                text = fh.read()
        except FileNotFoundError:
            text = ""
        import tomllib

        try:
            current = tomllib.loads(text)
        except tomllib.TOMLDecodeError:
            return  # not ours to repair
        projects = current.get("projects", {})
        if isinstance(projects, dict) and isinstance(projects.get(worktree), dict):
            return  # trusted already, or the person set something else for this folder: leave it
        key = json.dumps(worktree)  # a TOML basic string has JSON's escapes
        addition = f'\n[projects.{key}]\ntrust_level = "trusted"\n'
        new = text + ("" if text.endswith("\n") or not text else "\n") + addition
        atomic_write(path, new.encode("utf-8"), mode=0o600)


AGENT = Codex()
