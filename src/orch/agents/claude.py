"""Claude Code (``kind = "claude"``).

- coder: ``--permission-mode bypassPermissions`` (no prompts; Claude Code refuses it as root unless
  ``IS_SANDBOX=1``, which orch sets when running as root); reviewer: ``--permission-mode dontAsk`` with an
  allow-list of read-only tools and ``orch`` (anything else is refused without a prompt).
- ``--session-id <uuid>`` chosen by orch (``--resume <uuid>`` continues it); ``--settings <abs path>`` with hooks
  calling ``orch hook <Event>``.
- dialogs: the folder-trust question for the worktree, the "use this API key?" question and the bypass-mode
  warning are pre-answered in ``~/.claude.json`` the way Claude Code stores them (only those keys); with an API key
  in the environment, its onboarding too (``hasCompletedOnboarding``, a theme), unless you chose otherwise. A
  first-start screen orch cannot answer (no credentials: a login) is named in words (``first_start``).
- hooks: SessionStart, UserPromptSubmit, Stop, SubagentStop, and Notification, whose message says whether it
  waits for permission or is idle; the Stop payload carries the final message (a reviewer's verdict block).
"""

from __future__ import annotations

import json
import os

from orch.agents import hooks
from orch.agents.base import Agent, Launch, LaunchRequest, edit_json, sh_quote
from orch.agents.profile import AgentProfile
from orch.files import atomic_write

HOOK_EVENTS = ("SessionStart", "UserPromptSubmit", "Stop", "SubagentStop", "Notification")
# what Claude Code shows on a HOME where it never ran, before it takes any input (2.1.x): its onboarding
FIRST_START = ("Choose the text style", "Select login method", "Unable to connect to Anthropic services",
               "Log in with your Anthropic account", "Press Enter to continue", "Security notes")
REVIEWER_TOOLS = [
    "Read", "Grep", "Glob", "Bash(orch verdict:*)", "Bash(orch -:*)", "Bash(git diff:*)", "Bash(git log:*)",
    "Bash(git show:*)", "Bash(git status:*)",
]


class Claude(Agent):
    kind = "claude"
    install = "npm install -g @anthropic-ai/claude-code"
    can_resume = True

    def profiles(self) -> dict[str, AgentProfile]:
        return {"claude": AgentProfile.builtin(
            name="claude",
            kind="claude",
            command=["claude"],
            prompt="paste",
            ready_pattern=r"^❯(?:[ \u00a0]|$)",
            ready_timeout=60.0,
            enter_delay=0.2,
            hooks=True,
            screen_idle=r"^❯(?:[ \u00a0]|$)",
            screen_working=r"esc to interrupt",
            screen_waiting=r"Do you want to|❯ 1\. Yes",
            confirm_timeout=10.0,
        )}

    def launch(self, req: LaunchRequest) -> Launch:
        import uuid

        session = req.resume or str(uuid.uuid4())
        first = ["--resume", session] if req.resume else ["--session-id", session]
        launch = Launch(args=[*first, "--settings", settings_file(req.state_dir, req.orch_bin)], session=session)
        launch.env["DISABLE_AUTOUPDATER"] = "1"
        if req.role == "reviewer":
            own = [f"Bash({req.orch_bin} verdict:*)", f"Bash({req.orch_bin} -:*)"]
            launch.args += ["--permission-mode", "dontAsk", "--allowedTools", *REVIEWER_TOOLS, *own]
        else:
            launch.args += ["--permission-mode", "bypassPermissions"]
            if os.geteuid() == 0:
                launch.env["IS_SANDBOX"] = "1"  # Claude Code refuses bypass mode as root otherwise
        settings = os.path.join(req.home, ".claude.json")
        if req.spool:  # in orch's sandbox: its settings file inside its own folder (see sandbox_write)
            folder = config_dir(req)
            launch.env["CLAUDE_CONFIG_DIR"] = folder
            settings = seed_settings(req.home, folder)
        if req.profile.preanswer:
            key = req.env.get("ANTHROPIC_API_KEY") or os.environ.get("ANTHROPIC_API_KEY") or ""
            preanswer(settings, req.worktree, key, bypass=req.role != "reviewer")
        return launch

    def first_start(self, screen: str) -> str | None:
        found = next((phrase for phrase in FIRST_START if phrase in screen), None)
        if found is None:
            return None
        return (f'Claude Code is waiting on its first-start setup ("{found}"): run `claude` once in a terminal to '
                "finish it (log in, or set ANTHROPIC_API_KEY for orch's workers: orch then answers the rest)")

    def sandbox_write(self, req: LaunchRequest) -> list[str]:
        """Its state folder (sessions, projects, credentials), with its settings file in it: Claude Code saves that
        file by writing a copy beside it and renaming it, which HOME (read-only in the sandbox) would refuse, so
        there Claude Code runs with CLAUDE_CONFIG_DIR (``~/.claude`` unless you set another)."""
        folder = config_dir(req)
        os.makedirs(folder, exist_ok=True)
        return [folder]

    def hook_state(self, event: str, payload: dict) -> str | None:
        if hooks.event_key(event) == "notification":
            message = str(payload.get("message", "")).lower()
            if "waiting for your input" in message or "is idle" in message:
                return "idle"
            return "waiting"
        return hooks.state_for(event)


def settings_file(state_dir: str, orch_bin: str) -> str:
    """The ``--settings`` file: hooks that call ``orch hook <Event>`` (absolute paths; written once)."""
    path = os.path.join(state_dir, "agents", "claude-settings.json")
    commands = {
        event: [{"hooks": [{"type": "command", "command": f"{sh_quote(orch_bin)} hook {event}"}]}]
        for event in HOOK_EVENTS
    }
    data = (json.dumps({"hooks": commands}, indent=1) + "\n").encode()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    try:
        with open(path, "rb") as fh:
            if fh.read() == data:
                return path
    except OSError:
        pass
    atomic_write(path, data, mode=0o644)
    return path


def config_dir(req: LaunchRequest) -> str:
    return req.env.get("CLAUDE_CONFIG_DIR") or os.path.join(req.home, ".claude")


def seed_settings(home: str, folder: str) -> str:
    """``<folder>/.claude.json``, Claude Code's settings file under CLAUDE_CONFIG_DIR; started, the first time, as
    a copy of ``~/.claude.json`` (your onboarding, theme and login choices carry over). Returns its path."""
    path = os.path.join(folder, ".claude.json")
    if not os.path.exists(path):
        try:
            with open(os.path.join(home, ".claude.json"), "rb") as fh:
                data = fh.read()
        except OSError:
            data = b"{}\n"
        os.makedirs(folder, exist_ok=True)
        atomic_write(path, data, mode=0o600)
    return path


def preanswer(settings: str, worktree: str, api_key: str, bypass: bool) -> None:
    def change(data: dict) -> bool:
        before = json.dumps(data, sort_keys=True)
        projects = data.setdefault("projects", {})
        if isinstance(projects, dict):
            entry = projects.setdefault(worktree, {})
            if isinstance(entry, dict):
                entry["hasTrustDialogAccepted"] = True
        if api_key.strip():  # credentials in the environment: its onboarding (theme, login) has nothing to ask
            data.setdefault("hasCompletedOnboarding", True)
            data.setdefault("theme", "dark")
            responses = data.setdefault("customApiKeyResponses", {"approved": [], "rejected": []})
            if isinstance(responses, dict):
                approved = responses.setdefault("approved", [])
                tail = api_key.strip()[-20:]
                if isinstance(approved, list) and tail not in approved:
                    approved.append(tail)
        if bypass:
            data["bypassPermissionsModeAccepted"] = True
        return json.dumps(data, sort_keys=True) != before

    edit_json(settings, change)


AGENT = Claude()
