"""What an agent's hook event says about its worker's state. Pure.

Hooks call ``orch hook <event> [payload]``; the event is the agent's own name for it (Claude Code: SessionStart,
UserPromptSubmit, Stop, SubagentStop, Notification; Codex: its notify program gets a JSON argument; Aider: its
notifications command; the scripted agent: start, prompt, stop, wait). A sub-agent's stop never marks its parent
idle.
"""

from __future__ import annotations

import json

_SIMPLE = {
    "sessionstart": "idle",
    "start": "idle",
    "ready": "idle",
    "userpromptsubmit": "working",
    "prompt": "working",
    "pretooluse": "working",
    "posttooluse": "working",
    "working": "working",
    "stop": "idle",
    "idle": "idle",
    "agent-turn-complete": "idle",
    "aider-notify": None,  # aider wants attention: its first question of a turn, or the turn's end
    "wait": "waiting",
    "waiting": "waiting",
    "permission": "waiting",
    "subagentstop": None,
    "sessionend": None,  # the process itself tells whether it ended
}

SESSION_KEYS = ("session_id", "sessionId", "thread_id", "thread-id", "conversation_id", "conversation-id")


def parse_payload(text: str) -> dict:
    text = text.strip()
    if not text.startswith("{"):
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def state_for(event: str, payload: dict) -> str | None:
    """The worker state an event means, or None when it says nothing about the worker itself."""
    key = event.strip().lower().replace("_", "")
    if key == "notification":
        message = str(payload.get("message", "")).lower()
        if "waiting for your input" in message or "is idle" in message:
            return "idle"
        return "waiting"
    if key in ("codex-notify", "notify"):
        kind = str(payload.get("type", "")).lower()
        return "idle" if kind in ("agent-turn-complete", "turn-complete") else None
    return _SIMPLE.get(key, _SIMPLE.get(event.strip().lower()))


def session_of(payload: dict) -> str | None:
    for key in SESSION_KEYS:
        value = payload.get(key)
        if isinstance(value, str) and value:
            return value
    return None


TITLE_PREFIX = "Generate a concise, single-line task title"


def is_side_thread(event: str, payload: dict) -> bool:
    """Codex also notifies for its task-title side request: not the worker's turn."""
    if event.strip().lower() not in ("codex-notify", "notify"):
        return False
    messages = payload.get("input-messages") or payload.get("input_messages") or []
    first = messages[0] if isinstance(messages, list) and messages else ""
    return isinstance(first, str) and first.startswith(TITLE_PREFIX)


def final_message(payload: dict) -> str:
    """The agent's last message at the end of its turn (Claude Code's Stop hook, Codex's notify)."""
    for key in ("last_assistant_message", "last-assistant-message"):
        value = payload.get(key)
        if isinstance(value, str):
            return value
    return ""


def transcript_final(text: str) -> str:
    """The agent's last message in a piece of Aider's chat history (markdown): what follows the last person line
    (``#### ...``), without aider's own notes (``> ...`` lines)."""
    lines = text.replace("\r\n", "\n").split("\n")
    start = 0
    for i, line in enumerate(lines):
        if line.startswith("#### "):
            start = i + 1
    return "\n".join(line for line in lines[start:] if not line.startswith(">")).strip()


def report_from_final_message(text: str) -> str:
    """The last ``REPORT: <message>`` line of a final message (``REPORT: done: added the flag``), or ''."""
    found = ""
    for line in text.replace("\r\n", "\n").split("\n"):
        head, sep, rest = line.strip().strip("*`").partition(":")
        if sep and head.strip().upper() == "REPORT" and rest.strip():
            found = rest.strip().strip("*`").strip()
    return found
