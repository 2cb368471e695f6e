"""Workspace configuration: ``.orch/config.toml`` with defaults, validated with pydantic.

Workspace discovery lives in ``workspace.py`` (it is needed on the hot path, where pydantic is too heavy).
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from orch.agents import builtin_profiles
from orch.agents.profile import AgentProfile
from orch.errors import OrchError
from orch.workspace import Workspace

__all__ = ["AgentProfile", "Config", "builtin_profiles", "load"]

DEFAULT_CONFIG = """\
# orch workspace configuration. Every setting is optional; the values shown are the defaults.

# Folder of task files (<slug>.md). Relative paths are relative to the repository root; ~ is expanded.
# tasks_dir = ".orch/tasks"

# Where each task's git worktree is created (<worktree_root>/<slug>), relative to the repository root.
# worktree_root = ".worktree"

# Branch of each task: <branch_prefix><slug>. It must end in "/" or "-", so that orch's branches never take the
# names of your own.
# branch_prefix = "orch/"

# Branch (or commit) new task branches start from. Empty: the branch checked out in the repository.
# base = ""

# Agent profile used when a task does not name one (front matter `agent:` or `orch add --agent`).
# default_agent = "claude"

# Agent profile of the reviewers. Empty: the same agent as the task's coder.
# reviewer_agent = ""

# Review rounds (coder sent back by a failing validation, uncommitted work or the reviewer) before a task is
# marked blocked.
# max_review_rounds = 3

# A coder whose turn ended without `done`, `needs input` or `blocked` gets one reminder of how to report, after
# it has been idle this many seconds; if it goes idle again the task shows "idle, no report".
# idle_reminder = true
# idle_reminder_after = 10

# `orch run`: seconds between full reconcile passes (new task files and messages are acted on as they arrive).
# scan_interval = 30

# Workers of tasks in progress that were lost with the tmux server (a reboot, kill-server) are started again in
# their worktrees, resuming the agent's own session where it can. false: only report it (`orch recover` does it).
# recover_on_start = true

# Every worker runs in a sandbox of its own (bubblewrap): it writes only its worktree (a reviewer: nothing), its
# agent's own state and its spool to orch; it cannot see orch's state, the task files, tmux or other workers.
# "auto": on where bubblewrap works (`orch status` says which); "required": no worker starts without it; "off".
# sandbox = "auto"

[validate]
# Commands orch runs in the worktree when a coder reports done, for tasks without a `Validation` section.
# Each is run with `sh -c`, exactly as written here.
# commands = ["make test"]
# Seconds before a validation command is stopped (and counted as failed).
# timeout = 600

[tmux]
# Name of orch's own tmux server socket (tmux -L). The environment variable ORCH_TMUX_SOCKET overrides it.
# socket = "orch"

# Agent profiles. Built in: "scripted" (orch's test agent), "claude", "codex", "aider". Define your own like this:
#
# [agents.my-agent]
# command = ["my-agent", "--yes"]     # argument list, or a string split shell-style; runs in the worktree
# prompt = "paste"                    # paste: typed into the agent's input once it is ready
#                                     # arg:   appended as the last argument
#                                     # file:  the agent reads $ORCH_PROMPT_FILE itself
# readonly_args = ["--read-only"]     # extra arguments for the reviewer role
# sandbox_write = ["~/.my-agent"]     # more paths the agent may write inside its sandbox (its own state)
# sandbox_hide = ["~/.ssh"]           # paths it may not even read
# ready_pattern = "> $"               # regex on the pane's last lines meaning "ready for input" (paste mode)
"""


class TmuxConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    socket: str = "orch"

    @field_validator("socket")
    @classmethod
    def _socket(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_.][A-Za-z0-9_.-]{0,63}", value):
            raise ValueError("socket must be a plain name: letters, digits, '.', '_' and '-', not starting with '-'")
        return value


class ValidateConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    commands: list[str] = Field(default_factory=list)
    timeout: float = Field(default=600.0, gt=0, le=7 * 86400)
    write: list[str] = Field(default_factory=list)  # in the sandbox, writable besides the worktree (a cache folder)


class Config(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, allow_inf_nan=False)

    tasks_dir: str = ".orch/tasks"
    worktree_root: str = ".worktree"
    branch_prefix: str = "orch/"
    base: str = ""
    default_agent: str = "claude"
    reviewer_agent: str = ""
    max_review_rounds: int = Field(default=3, ge=1, le=100)
    idle_reminder: bool = True
    idle_reminder_after: float = Field(default=10.0, ge=0, le=86400)
    # orch run: seconds between full reconcile passes (files and messages are acted on as they arrive)
    scan_interval: float = Field(default=30.0, ge=0.5, le=86400)
    # bring back the workers of tasks in progress when they were lost with the tmux server (reboot, kill-server);
    # false: only report it, and `orch recover` brings them back
    recover_on_start: bool = True
    sandbox: Literal["auto", "required", "off"] = "auto"
    tmux: TmuxConfig = Field(default_factory=TmuxConfig)
    validate_: ValidateConfig = Field(default_factory=ValidateConfig, alias="validate")
    agents: dict[str, AgentProfile] = Field(default_factory=dict)

    # resolved at load time (not read from the file)
    root: str = Field(default="", exclude=True)

    @field_validator("agents", mode="before")
    @classmethod
    def _names(cls, value: object) -> object:
        if isinstance(value, dict):
            return {k: ({**v, "name": k} if isinstance(v, dict) else v) for k, v in value.items()}
        return value

    @model_validator(mode="after")
    def _commands(self) -> Config:
        builtin = builtin_profiles()
        for name, profile in self.agents.items():
            if name not in builtin and not profile.command:
                raise ValueError(f"agents.{name}.command is required (the program to run, e.g. [\"my-agent\"])")
        known = sorted({*builtin, *self.agents})
        for key in ("default_agent", "reviewer_agent"):
            name = getattr(self, key)
            if name and name not in known:
                raise ValueError(f"{key} = {name!r} is not an agent profile (known: {', '.join(known)}); define it "
                                 f"under [agents.{name}] or name one of those")
        return self

    def resolve(self, path: str) -> str:
        return os.path.normpath(os.path.join(self.root, os.path.expanduser(path)))

    @property
    def tasks_path(self) -> str:
        return self.resolve(self.tasks_dir)

    @property
    def done_path(self) -> str:
        return os.path.join(self.tasks_path, "done")

    @property
    def worktree_path(self) -> str:
        return self.resolve(self.worktree_root)

    @property
    def socket(self) -> str:
        return os.environ.get("ORCH_TMUX_SOCKET") or self.tmux.socket

    def profile(self, name: str) -> AgentProfile:
        """A profile by name. A config table named like a built-in profile adjusts it (the keys it sets win)."""
        builtin = builtin_profiles()
        if name in self.agents:
            own = self.agents[name]
            if name in builtin:
                return builtin[name].model_copy(update={k: getattr(own, k) for k in own.model_fields_set}, deep=True)
            return own
        if name in builtin:
            return builtin[name]
        known = ", ".join(sorted({*builtin, *self.agents}))
        raise OrchError(f"unknown agent {name!r} (known: {known}); define it under [agents.{name}] in config.toml")


TASKS_DIR_CACHE = "tasks_dir"  # read by workspace.cached_tasks_dir on the hot path


def load(ws: Workspace) -> Config:
    try:
        with open(ws.config_file, "rb") as fh:
            raw = tomllib.load(fh)
    except FileNotFoundError:
        raise OrchError(f"{ws.config_file} is missing: run `orch init` in {ws.root}") from None
    except tomllib.TOMLDecodeError as exc:
        raise OrchError(f"{ws.config_file}: not valid TOML ({exc})") from None
    try:
        cfg = Config.model_validate(raw)
    except ValidationError as exc:
        raise OrchError(f"{ws.config_file}: {explain(exc.errors()[0])}") from None
    cfg.root = ws.root
    problem = overlap(cfg)
    if problem:
        raise OrchError(f"{ws.config_file}: {problem}")
    _cache_tasks_dir(ws, cfg)
    return cfg


def explain(err: Mapping[str, Any]) -> str:
    """One error of the config, in plain words: the key, its table, and what is wrong."""
    loc = [str(p) for p in err["loc"]]
    key, table = (loc[-1], ".".join(loc[:-1])) if loc else ("", "")
    if err["type"] == "extra_forbidden":
        if table and key in Config.model_fields:
            return (f"{key} is not a setting of [{table}]: in TOML a key belongs to the last [table] above it, so "
                    f"`{key} = ...` written after [{table}] lands in it; move it above the first [table]")
        known = ", ".join(sorted(_fields(table)))
        return f"unknown setting {key!r}{f' in [{table}]' if table else ''} (known: {known})"
    message = err["msg"].removeprefix("Value error, ")
    if not loc:
        return message
    return f"{key}{f' in [{table}]' if table else ''}: {message}"


def _fields(table: str) -> list[str]:
    model: type[BaseModel] = Config
    for part in table.split(".") if table else []:
        annotation = model.model_fields[part].annotation if part in model.model_fields else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return [name for name in model.model_fields if name != "root"]


def overlap(cfg: Config) -> str | None:
    """Settings that would make orch's branches or worktrees take the person's own names and places (orch removes
    only what it made, but these are refused before anything is made)."""
    prefix = cfg.branch_prefix
    if not prefix or prefix[-1] not in "/-" or prefix.strip("/-") == "":
        return (f"branch_prefix = {prefix!r} would give orch's branches names of your own: use a prefix ending in "
                "'/' or '-', like \"orch/\"")
    root = os.path.realpath(cfg.root)
    wt = os.path.realpath(cfg.worktree_path)
    if wt == root or root.startswith(wt + os.sep):
        return (f"worktree_root = {cfg.worktree_root!r} is the repository or a folder above it: worktrees need a "
                "folder of their own, like \".worktree\"")
    for name in (".git", ".orch"):
        inside = os.path.join(root, name)
        if wt == inside or wt.startswith(inside + os.sep):
            return f"worktree_root = {cfg.worktree_root!r} is inside {name}: use a folder of its own, like \".worktree\""
    return None


def _cache_tasks_dir(ws: Workspace, cfg: Config) -> None:
    """Keep ``.orch/tasks_dir`` (read by the hot path instead of parsing TOML) in step with the config: same
    content, and newer than config.toml (the hot path trusts it only then)."""
    cache = ws.path(TASKS_DIR_CACHE)
    try:
        with open(cache, encoding="utf-8") as fh:
            same = fh.read() == cfg.tasks_path
        if same and os.stat(cache).st_mtime_ns >= os.stat(ws.config_file).st_mtime_ns:
            return
        if same:
            os.utime(cache)
            return
    except OSError:
        pass
    try:
        from orch.files import atomic_write

        atomic_write(cache, cfg.tasks_path.encode("utf-8"), mode=0o644)
    except OSError:
        pass
