"""Hook events, generically. Pure.

Hooks call ``orch hook <event> [payload]``; the event is the agent's own name for it. This module holds what
holds for any agent: the payload as JSON, the plain event names (the scripted agent's start, prompt, stop, wait,
and the names agents share), session ids under their usual keys, a final message, and the ``REPORT:`` line of a
final message. What one agent's events mean beyond that lives in that agent's module.
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
    "wait": "waiting",
    "waiting": "waiting",
    "permission": "waiting",
    "subagentstop": None,  # a sub-agent's stop never marks its parent idle
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


def event_key(event: str) -> str:
    return event.strip().lower().replace("_", "")


def state_for(event: str) -> str | None:
    """The worker state a plain event name means, or None."""
    return _SIMPLE.get(event_key(event), _SIMPLE.get(event.strip().lower()))


def session_of(payload: dict) -> str | None:
    for key in SESSION_KEYS:
        value = payload.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def final_message(payload: dict) -> str:
    """The agent's last message at the end of its turn, where the payload carries it."""
    for key in ("last_assistant_message", "last-assistant-message"):
        value = payload.get(key)
        if isinstance(value, str):
            return value
    return ""


def report_from_final_message(text: str) -> str:
    """The last ``REPORT: <message>`` line of a final message (``REPORT: done: added the flag``), or ''."""
    found = ""
    for line in text.replace("\r\n", "\n").split("\n"):
        head, sep, rest = line.strip().strip("*`").partition(":")
        if sep and head.strip().upper() == "REPORT" and rest.strip():
            found = rest.strip().strip("*`").strip()
    return found
