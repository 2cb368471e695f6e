"""Aider (``kind = "aider"``).

- coder: ``--yes-always`` (no questions; aider still refuses to run shell commands it suggests, so it reports in
  its final message: ``REPORT: done: ...``), auto-commits on; reviewer: ``--chat-mode ask --dry-run
  --no-auto-commits`` (it answers, never edits) with its verdict as a ``VERDICT:`` block in its final message.
- ``--notifications-command '<orch> hook aider-notify'`` (aider runs it through a shell: only orch's own quoted
  path is in it). It fires when aider first wants attention in a turn, which can be before its edit is applied,
  so it only confirms that a prompt was taken: the turn's end is read from the screen (profile ``turn_end``).
- the session is aider's chat history file, kept in orch's state folder: orch reads each turn's final message
  from it, and ``--restore-chat-history`` resumes it.
- no first-start dialogs with these arguments (no update check, no release notes, analytics off, no model
  warnings, no .gitignore edit); ``.aider*`` goes to the repository's ``info/exclude`` so aider's caches never
  make a worktree look dirty.
"""

from __future__ import annotations

import os

from orch.agents import hooks
from orch.agents.base import Agent, Launch, LaunchRequest, TranscriptTurn, sh_quote
from orch.agents.profile import AgentProfile
from orch.files import touch

COMMON = [
    "--yes-always", "--no-check-update", "--no-show-release-notes", "--analytics-disable", "--no-show-model-warnings",
    "--no-gitignore", "--no-suggest-shell-commands", "--notifications",
]


class Aider(Agent):
    kind = "aider"
    install = "pipx install aider-chat"
    own_files = (".aider*",)
    can_resume = True
    reports_in_transcript = True

    def profiles(self) -> dict[str, AgentProfile]:
        return {"aider": AgentProfile.builtin(
            name="aider",
            kind="aider",
            command=["aider"],
            prompt="paste",
            ready_pattern=r"^\w*> *$",
            ready_timeout=60.0,
            enter_delay=0.2,
            hooks=True,
            prompt_hook=False,
            turn_end="screen",
            screen_idle=r"^\w*> *\Z",
            screen_working=r"Waiting for ",
            screen_waiting=r"\(Y\)es/\(N\)o",
            confirm_timeout=20.0,
        )}

    def launch(self, req: LaunchRequest) -> Launch:
        history = req.resume or history_file(req.state_dir, req.worker_id)
        os.makedirs(os.path.dirname(history), exist_ok=True)
        launch = Launch(args=[
            *COMMON, "--notifications-command", f"{sh_quote(req.orch_bin)} hook aider-notify",
            "--chat-history-file", history, "--input-history-file", history[: -len(".chat.md")] + ".input",
        ], session=history)
        if req.resume:
            launch.args.append("--restore-chat-history")
        if req.role == "reviewer":
            launch.args += ["--chat-mode", "ask", "--dry-run", "--no-auto-commits", "--no-dirty-commits"]
        if req.git_dirs:
            from orch.git import add_exclude

            add_exclude("", [".aider*"], why="orch for aider's caches", common_dir=req.git_dirs[0])
        return launch

    def sandbox_write(self, req: LaunchRequest) -> list[str]:
        """Its chat and input histories (kept in orch's state folder) and its own folder in HOME (caches)."""
        history = req.resume or history_file(req.state_dir, req.worker_id)
        os.makedirs(os.path.join(req.home, ".aider"), exist_ok=True)
        paths = [history, history[: -len(".chat.md")] + ".input"]
        for path in paths:
            touch(path)
        return [*paths, os.path.join(req.home, ".aider")]

    def hook_state(self, event: str, payload: dict) -> str | None:
        if hooks.event_key(event) == "aider-notify":
            return None  # its first question of a turn, or the turn's end: the screen tells which
        return hooks.state_for(event)

    def transcript_turn(self, session: str, offset: int) -> TranscriptTurn | None:
        """The final message of the turn that just ended, from the chat history past ``offset``."""
        try:
            with open(session, "rb") as fh:
                fh.seek(offset)
                new = fh.read()
        except OSError:
            return None
        return TranscriptTurn(transcript_final(new.decode("utf-8", "replace")), offset + len(new))


def history_file(state_dir: str, worker_id: str) -> str:
    return os.path.join(state_dir, "agents", "aider", worker_id.replace(":", "-") + ".chat.md")


def transcript_final(text: str) -> str:
    """The agent's last message in a piece of Aider's chat history (markdown): what follows the last person line
    (``#### ...``), without aider's own notes (``> ...`` lines)."""
    lines = text.replace("\r\n", "\n").split("\n")
    start = 0
    for i, line in enumerate(lines):
        if line.startswith("#### "):
            start = i + 1
    return "\n".join(line for line in lines[start:] if not line.startswith(">")).strip()


AGENT = Aider()
