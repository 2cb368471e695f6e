"""An agent profile: the data of one configured agent (its program, how its prompt is delivered, its timings and
screen patterns). The agent modules give the built-in ones; ``[agents.NAME]`` in config.toml adds or adjusts."""

from __future__ import annotations

from orch.settings import Settings, choice, flag, names, number, text, words


def _kind(value: object) -> object:
    from orch.agents import kinds

    if value not in kinds():
        raise ValueError(f"unknown kind {value!r} (kinds: {', '.join(sorted(kinds()))})")
    return value


def _program(value: object) -> object:
    if isinstance(value, list) and value and not value[0]:
        raise ValueError("command must name a program")
    return value


def _regex(value: object) -> object:
    import re

    try:
        re.compile(str(value), re.M)
    except re.error as exc:
        raise ValueError(f"not a valid regular expression: {exc}") from None
    return value


class AgentProfile(Settings):
    name: str
    # which agent module handles it (orch.agents: generic, scripted, claude, codex, aider)
    kind: str
    command: list[str]  # in config.toml also a string, split shell-style
    prompt: str  # paste | arg | file
    readonly_args: list[str]
    ready_pattern: str
    ready_timeout: float
    enter_delay: float
    env: dict[str, str]
    # worker state: the agent reports its turns through `orch hook` (set up by orch for the built-in agents);
    # prompt_hook: its hooks also say when it takes a prompt (else the screen and delivery tell)
    hooks: bool
    prompt_hook: bool
    # turn_end: what says a turn ended: "hook" (the agent's stop hook) or "screen" (its idle prompt, read twice;
    # for agents whose notification also fires mid-turn, like Aider's)
    turn_end: str
    # pre-answer the agent's first-start dialogs (folder trust, API key) in its own settings file
    preanswer: bool
    # screen patterns (regex, multi-line, on the pane's last lines): the fallback source of worker state
    screen_idle: str
    screen_working: str
    screen_waiting: str
    # the sandbox: more paths the agent may write (its own state; ~ is its HOME), and paths it may not even read
    sandbox_write: list[str]
    sandbox_hide: list[str]
    # seconds to wait for a typed prompt to be taken (a hook, or the screen showing work) before pressing Enter again
    confirm_timeout: float

    FIELDS = {
        "name": text(),
        "kind": text("generic", check=_kind, costly=True),
        "command": words(check=_program, split=True),
        "prompt": choice("paste", "paste", "arg", "file"),
        "readonly_args": words(),
        "ready_pattern": text(check=_regex, costly=True),
        "ready_timeout": number(30.0, 0, 86400, lo_open=True),
        "enter_delay": number(0.05, 0, 60),
        "env": names(),
        "hooks": flag(False),
        "prompt_hook": flag(True),
        "turn_end": choice("hook", "hook", "screen"),
        "preanswer": flag(True),
        "screen_idle": text(check=_regex, costly=True),
        "screen_working": text(check=_regex, costly=True),
        "screen_waiting": text(check=_regex, costly=True),
        "sandbox_write": words(),
        "sandbox_hide": words(),
        "confirm_timeout": number(5.0, 0, 3600, lo_open=True),
    }

    def has_screen_patterns(self) -> bool:
        return bool(self.screen_idle or self.screen_working or self.screen_waiting)
