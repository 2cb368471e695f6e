"""How orch starts the agents it knows: arguments per role, hooks, session ids, first-start dialogs answered.

Claude Code (kind ``claude``):
- coder: ``--permission-mode bypassPermissions`` (no prompts; Claude Code refuses it as root unless
  ``IS_SANDBOX=1``, which orch sets when running as root); reviewer: ``--permission-mode dontAsk`` with an
  allow-list of read-only tools and ``orch`` (anything else is refused without a prompt).
- ``--session-id <uuid>`` chosen by orch; ``--settings <abs path>`` with hooks calling ``orch hook <Event>``.
- dialogs: the folder-trust question for the worktree, the "use this API key?" question and the bypass-mode
  warning are pre-answered in ``~/.claude.json`` the way Claude Code stores them (only those keys).

Codex (kind ``codex``):
- coder: ``--no-daemon --sandbox workspace-write -a never`` plus ``--add-dir`` for the repository's git directory
  and the worktree's own git directory (commits; the sandbox keeps ``.git`` read-only otherwise) and orch's
  state folder (``orch -``); reviewer: ``--sandbox read-only -a never`` (it cannot write
  anywhere, so its verdict is read from its final message).
- ``-c notify=[<orch>, "hook", "codex-notify"]``; the session (thread) id comes from the notify payload.
- dialogs: the folder-trust question is pre-answered in ``~/.codex/config.toml``.

Aider (kind ``aider``):
- coder: ``--yes-always`` (no questions; aider still refuses to run shell commands it suggests, so it reports in
  its final message: ``REPORT: done: ...``), auto-commits on; reviewer: ``--chat-mode ask --dry-run
  --no-auto-commits`` (it answers, never edits) with its verdict as a ``VERDICT:`` block in its final message.
- ``--notifications-command '<orch> hook aider-notify'`` (aider runs it through a shell: only orch's own quoted
  path is in it); the session is aider's chat history file, kept in orch's state folder, which orch reads for the
  final message and which ``--restore-chat-history`` resumes.
- no first-start dialogs with these arguments (no update check, no release notes, analytics off, no model
  warnings, no .gitignore edit); ``.aider*`` goes to the repository's ``info/exclude`` so aider's caches never
  make a worktree look dirty.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass, field

from orch.config import AgentProfile
from orch.files import atomic_write
from orch.locks import hold

CLAUDE_HOOK_EVENTS = ("SessionStart", "UserPromptSubmit", "Stop", "SubagentStop", "Notification")
CLAUDE_REVIEWER_TOOLS = [
    "Read", "Grep", "Glob", "Bash(orch verdict:*)", "Bash(orch -:*)", "Bash(git diff:*)", "Bash(git log:*)",
    "Bash(git show:*)", "Bash(git status:*)",
]


@dataclass
class Launch:
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    session: str = ""


def prepare(profile: AgentProfile, role: str, state_dir: str, orch_bin: str, worktree: str, git_dirs: list[str],
            env: dict[str, str], worker_id: str = "", resume: str = "") -> Launch:
    """Arguments and environment for one worker of ``profile`` in ``role``; pre-answers first-start dialogs.

    ``resume``: the agent session to continue (a lost worker brought back), where the agent can resume one."""
    home = env.get("HOME") or os.environ.get("HOME") or os.path.expanduser("~")
    if profile.kind == "claude":
        return _claude(profile, role, state_dir, orch_bin, worktree, home, env, resume)
    if profile.kind == "codex":
        return _codex(profile, role, state_dir, orch_bin, worktree, git_dirs, home, resume)
    if profile.kind == "aider":
        return _aider(role, state_dir, orch_bin, git_dirs, worker_id, resume)
    return Launch()


def can_resume(profile: AgentProfile) -> bool:
    return profile.kind in ("claude", "codex", "aider")


def _claude(profile: AgentProfile, role: str, state_dir: str, orch_bin: str, worktree: str, home: str,
            env: dict[str, str], resume: str) -> Launch:
    session = resume or str(uuid.uuid4())
    settings = claude_settings(state_dir, orch_bin)
    first = ["--resume", session] if resume else ["--session-id", session]
    launch = Launch(args=[*first, "--settings", settings], session=session)
    launch.env["DISABLE_AUTOUPDATER"] = "1"
    if role == "reviewer":
        own = [f"Bash({orch_bin} verdict:*)", f"Bash({orch_bin} -:*)"]
        launch.args += ["--permission-mode", "dontAsk", "--allowedTools", *CLAUDE_REVIEWER_TOOLS, *own]
    else:
        launch.args += ["--permission-mode", "bypassPermissions"]
        if os.geteuid() == 0:
            launch.env["IS_SANDBOX"] = "1"  # Claude Code refuses bypass mode as root otherwise
    if profile.preanswer:
        key = env.get("ANTHROPIC_API_KEY") or os.environ.get("ANTHROPIC_API_KEY") or ""
        preanswer_claude(home, worktree, key, bypass=role != "reviewer")
    return launch


def claude_settings(state_dir: str, orch_bin: str) -> str:
    """The ``--settings`` file: hooks that call ``orch hook <Event>`` (absolute paths; written once)."""
    path = os.path.join(state_dir, "agents", "claude-settings.json")
    hooks = {
        event: [{"hooks": [{"type": "command", "command": f"{_sh_quote(orch_bin)} hook {event}"}]}]
        for event in CLAUDE_HOOK_EVENTS
    }
    data = (json.dumps({"hooks": hooks}, indent=1) + "\n").encode()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    try:
        with open(path, "rb") as fh:
            if fh.read() == data:
                return path
    except OSError:
        pass
    atomic_write(path, data, mode=0o644)
    return path


def _sh_quote(text: str) -> str:
    """Claude Code runs hook commands with a shell: quote orch's own path (never task or agent text)."""
    return "'" + text.replace("'", "'\"'\"'") + "'"


def _edit_json(path: str, change) -> None:
    """An atomic, locked edit of an agent's JSON settings file (only the keys ``change`` touches)."""
    with hold(path + ".orch-lock", wait=10):
        try:
            with open(path, encoding="utf-8") as fh:
                data = json.load(fh)
        except FileNotFoundError:
            data = {}
        except ValueError:
            return  # not ours to repair: leave a file we cannot read alone
        if not isinstance(data, dict):
            return
        if change(data):
            mode = os.stat(path).st_mode & 0o777 if os.path.exists(path) else 0o600
            atomic_write(path, (json.dumps(data, indent=2) + "\n").encode(), mode=mode)


def preanswer_claude(home: str, worktree: str, api_key: str, bypass: bool) -> None:
    def change(data: dict) -> bool:
        before = json.dumps(data, sort_keys=True)
        projects = data.setdefault("projects", {})
        if isinstance(projects, dict):
            entry = projects.setdefault(worktree, {})
            if isinstance(entry, dict):
                entry["hasTrustDialogAccepted"] = True
        if api_key.strip():
            responses = data.setdefault("customApiKeyResponses", {"approved": [], "rejected": []})
            if isinstance(responses, dict):
                approved = responses.setdefault("approved", [])
                tail = api_key.strip()[-20:]
                if isinstance(approved, list) and tail not in approved:
                    approved.append(tail)
        if bypass:
            data["bypassPermissionsModeAccepted"] = True
        return json.dumps(data, sort_keys=True) != before

    _edit_json(os.path.join(home, ".claude.json"), change)


def _codex(profile: AgentProfile, role: str, state_dir: str, orch_bin: str, worktree: str, git_dirs: list[str],
           home: str, resume: str) -> Launch:
    notify = json.dumps([orch_bin, "hook", "codex-notify"])
    first = ["resume", resume] if resume else []
    launch = Launch(args=[*first, "--no-daemon", "-c", f"notify={notify}", "-a", "never"], session=resume)
    if role == "reviewer":
        launch.args += ["--sandbox", "read-only"]
    else:
        launch.args += ["--sandbox", "workspace-write"]
        for folder in (*git_dirs, state_dir):  # commits write in the git dirs; `orch -` in orch's state folder
            launch.args += ["--add-dir", folder]
    if profile.preanswer:
        preanswer_codex(home, worktree)
    return launch


def preanswer_codex(home: str, worktree: str) -> None:
    """Trust the worktree in ``~/.codex/config.toml`` as Codex records it (a ``[projects."<path>"]`` table)."""
    import tomllib

    path = os.path.join(home, ".codex", "config.toml")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with hold(path + ".orch-lock", wait=10):
        try:
            with open(path, encoding="utf-8") as fh:
                text = fh.read()
        except FileNotFoundError:
            text = ""
        try:
            current = tomllib.loads(text)
        except tomllib.TOMLDecodeError:
            return  # not ours to repair
        projects = current.get("projects", {})
        if isinstance(projects, dict) and isinstance(projects.get(worktree), dict):
            if projects[worktree].get("trust_level") == "trusted":
                return
            return  # the person set something else for this folder: leave it
        key = json.dumps(worktree)  # a TOML basic string has JSON's escapes
        addition = f'\n[projects.{key}]\ntrust_level = "trusted"\n'
        new = text + ("" if text.endswith("\n") or not text else "\n") + addition
        atomic_write(path, new.encode("utf-8"), mode=0o600)


AIDER_COMMON = [
    "--yes-always", "--no-check-update", "--no-show-release-notes", "--analytics-disable", "--no-show-model-warnings",
    "--no-gitignore", "--no-suggest-shell-commands", "--notifications",
]


def aider_history(state_dir: str, worker_id: str) -> str:
    return os.path.join(state_dir, "agents", "aider", worker_id.replace(":", "-") + ".chat.md")


def _aider(role: str, state_dir: str, orch_bin: str, git_dirs: list[str], worker_id: str, resume: str) -> Launch:
    history = resume or aider_history(state_dir, worker_id)
    os.makedirs(os.path.dirname(history), exist_ok=True)
    launch = Launch(args=[
        *AIDER_COMMON, "--notifications-command", f"{_sh_quote(orch_bin)} hook aider-notify",
        "--chat-history-file", history, "--input-history-file", history[: -len(".chat.md")] + ".input",
    ], session=history)
    if resume:
        launch.args.append("--restore-chat-history")
    if role == "reviewer":
        launch.args += ["--chat-mode", "ask", "--dry-run", "--no-auto-commits", "--no-dirty-commits"]
    if git_dirs:
        from orch.git import add_exclude

        add_exclude("", [".aider*"], why="orch for aider's caches", common_dir=git_dirs[0])
    return launch
