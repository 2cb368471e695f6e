"""An agent profile: the data of one configured agent (its program, how its prompt is delivered, its timings and
screen patterns). The agent modules give the built-in ones; ``[agents.NAME]`` in config.toml adds or adjusts."""

from __future__ import annotations

import re
import shlex
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class AgentProfile(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    name: str = ""
    # which agent module handles it (orch.agents: generic, scripted, claude, codex, aider)
    kind: str = "generic"
    command: list[str] = Field(default_factory=list)
    prompt: Literal["paste", "arg", "file"] = "paste"
    readonly_args: list[str] = Field(default_factory=list)
    ready_pattern: str = ""
    ready_timeout: float = Field(default=30.0, gt=0, le=86400)
    enter_delay: float = Field(default=0.05, ge=0, le=60)
    env: dict[str, str] = Field(default_factory=dict)
    # worker state: the agent reports its turns through `orch hook` (set up by orch for the built-in agents);
    # prompt_hook: its hooks also say when it takes a prompt (else the screen and delivery tell)
    hooks: bool = False
    prompt_hook: bool = True
    # turn_end: what says a turn ended: "hook" (the agent's stop hook) or "screen" (its idle prompt, read twice;
    # for agents whose notification also fires mid-turn, like Aider's)
    turn_end: Literal["hook", "screen"] = "hook"
    # pre-answer the agent's first-start dialogs (folder trust, API key) in its own settings file
    preanswer: bool = True
    # screen patterns (regex, multi-line, on the pane's last lines): the fallback source of worker state
    screen_idle: str = ""
    screen_working: str = ""
    screen_waiting: str = ""
    # the sandbox: more paths the agent may write (its own state; ~ is its HOME), and paths it may not even read
    sandbox_write: list[str] = Field(default_factory=list)
    sandbox_hide: list[str] = Field(default_factory=list)
    # seconds to wait for a typed prompt to be taken (a hook, or the screen showing work) before pressing Enter again
    confirm_timeout: float = Field(default=5.0, gt=0, le=3600)

    @field_validator("kind")
    @classmethod
    def _kind(cls, value: str) -> str:
        from orch.agents import kinds

        if value not in kinds():
            raise ValueError(f"unknown kind {value!r} (kinds: {', '.join(sorted(kinds()))})")
        return value

    @field_validator("command", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return shlex.split(value)
        return value

    @field_validator("command")
    @classmethod
    def _not_empty(cls, value: list[str]) -> list[str]:
        if value and not value[0]:
            raise ValueError("command must name a program")
        return value

    @field_validator("ready_pattern", "screen_idle", "screen_working", "screen_waiting")
    @classmethod
    def _regex(cls, value: str) -> str:
        try:
            re.compile(value, re.M)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from None
        return value

    def has_screen_patterns(self) -> bool:
        return bool(self.screen_idle or self.screen_working or self.screen_waiting)
