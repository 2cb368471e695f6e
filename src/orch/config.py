"""Workspace configuration: ``.orch/config.toml`` with defaults, each key checked as it is read (``settings``).

Workspace discovery lives in ``workspace.py`` (it is needed on the hot path, which reads no configuration).
"""

from __future__ import annotations

import os

from orch.agents import PROFILE_NAMES, builtin_profile, builtin_profiles
from orch.agents.profile import AgentProfile
from orch.errors import OrchError
from orch.settings import Problem, Settings, build, choice, flag, integer, number, table, tables, text, words
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

[forge]
# Pull requests on GitHub, through the `gh` program (logged in as you: `gh auth login`). orch watches the PR of
# each task (found from the worker's "PR created <url>" or from the task branch): its checks, review threads and
# change requests become fix rounds, and a task with a PR is ready only when all of them agree on one head sha.
# The forge is asked when `repo` is set, `pr` is not "off", or a task names its PR.
# repo = ""              # "owner/name", or "host/owner/name" for GitHub Enterprise; empty: from the remote's URL
# remote = "origin"      # where orch pushes task branches (only with pr = "draft" or "ready")
# pr = "off"             # "draft" or "ready": orch pushes the branch and opens the PR when the task is approved
# interval = 60          # seconds between two queries of the forge (one query for every task's PR)
# required_checks = []   # names of the checks that must be green; empty: every check
# bots = []              # logins of review bots: their comments are findings, and they must speak on the head sha
# bot_severity = "minor" # severity of a bot's comment (blocker, major, minor or note)
# bot_timeout = 900      # seconds orch waits for the bots to speak on a new head before it goes on without them
# check_wait = 120       # seconds a new head without any check waits for its first checks (CI registers them late)
# max_rounds = 3         # fix rounds from the forge (checks, threads, change requests) before the task is blocked
# log_lines = 80         # lines of a failed job's log sent to the coder

[land]
# `orch land A B C`: how a train puts each member on the integration branch: "merge" (a merge commit per member)
# or "rebase" (its commits replayed; a member's review carries over only when `git range-diff` shows the same
# patches, else it is reviewed again first).
# method = "merge"
# "forge": where the repository requires pull requests, a train hands its members to the forge instead (each PR's
# auto-merge, with `method`); a member becomes merged when its PR is merged.
# via = "git"

[cluster]
# Many hosts (README "Many hosts"): with an address, `orch run` places each task on a machine running `orch host`
# instead of starting its workers here, through a Temporal server (a workflow per task holds its placement).
# address = ""                  # host:port of the Temporal frontend, e.g. "temporal.example.com:7233"
# namespace = "default"
# name = "orch"                 # the cluster's name: its hosts' task queues are <name>.host.<host>
# remote = "origin"             # the git remote the hosts clone and push work in progress to (refs/orch/wip/*)
# heartbeat = 15                # seconds without a heartbeat after which a host's tasks go to another host
# tls_ca = ""                   # mTLS: the server's CA, this workspace's certificate and key (PEM files)
# tls_cert = ""
# tls_key = ""
# tls_server_name = ""
# api_key_env = "ORCH_CLUSTER_API_KEY"   # Temporal Cloud: the environment variable that holds the API key

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


def _socket(value: object) -> object:
    name = str(value)
    ok = 0 < len(name) <= 64 and name[0] != "-" and all(c.isascii() and (c.isalnum() or c in "_.-") for c in name)
    if not ok:
        raise ValueError("must be a plain name: letters, digits, '.', '_' and '-', not starting with '-'")
    return value


class TmuxConfig(Settings):
    socket: str
    FIELDS = {"socket": text("orch", check=_socket)}


class ValidateConfig(Settings):
    commands: list[str]
    timeout: float
    write: list[str]  # in the sandbox, writable besides the worktree (a cache folder)
    FIELDS = {"commands": words(), "timeout": number(600.0, 0, 7 * 86400, lo_open=True), "write": words()}


def _repo(value: object) -> object:
    parts = str(value).split("/")
    if str(value) and (len(parts) not in (2, 3) or not all(parts)
                       or any(c.isspace() or c in "\\?#@" for c in str(value)) or parts[0].startswith("-")):
        raise ValueError('must be "owner/name" or "host/owner/name"')
    return value


class ForgeConfig(Settings):
    repo: str
    remote: str
    pr: str
    interval: float
    required_checks: list[str]
    bots: list[str]
    bot_severity: str
    bot_timeout: float
    check_wait: float
    max_rounds: int
    log_lines: int
    FIELDS = {
        "repo": text("", check=_repo),
        "remote": text("origin", check=_socket),
        "pr": choice("off", "off", "draft", "ready"),
        "interval": number(60.0, 0, 86400),
        "required_checks": words(),
        "bots": words(),
        "bot_severity": choice("minor", "blocker", "major", "minor", "note"),
        "bot_timeout": number(900.0, 0, 7 * 86400),
        "check_wait": number(120.0, 0, 86400),
        "max_rounds": integer(3, 1, 100),
        "log_lines": integer(80, 5, 2000),
    }


class LandConfig(Settings):
    method: str
    via: str
    FIELDS = {"method": choice("merge", "merge", "rebase"), "via": choice("git", "git", "forge")}


class ClusterConfig(Settings):
    address: str
    namespace: str
    name: str
    remote: str
    heartbeat: float
    tls_ca: str
    tls_cert: str
    tls_key: str
    tls_server_name: str
    api_key_env: str
    FIELDS = {
        "address": text(),
        "namespace": text("default"),
        "name": text("orch", check=_socket),
        "remote": text("origin", check=_socket),
        "heartbeat": number(15.0, 1, 3600),
        "tls_ca": text(),
        "tls_cert": text(),
        "tls_key": text(),
        "tls_server_name": text(),
        "api_key_env": text("ORCH_CLUSTER_API_KEY"),
    }

    @property
    def on(self) -> bool:
        return bool(self.address)


class Config(Settings):
    tasks_dir: str
    worktree_root: str
    branch_prefix: str
    base: str
    default_agent: str
    reviewer_agent: str
    max_review_rounds: int
    idle_reminder: bool
    idle_reminder_after: float
    scan_interval: float  # orch run: seconds between full passes (files and messages are acted on as they arrive)
    # bring back the workers of tasks in progress when they were lost with the tmux server (reboot, kill-server);
    # false: only report it, and `orch recover` brings them back
    recover_on_start: bool
    sandbox: str  # auto | required | off
    tmux: TmuxConfig
    validate_: ValidateConfig
    forge: ForgeConfig
    land: LandConfig
    cluster: ClusterConfig
    agents: dict[str, AgentProfile]

    FIELDS = {
        "tasks_dir": text(".orch/tasks"),
        "worktree_root": text(".worktree"),
        "branch_prefix": text("orch/"),
        "base": text(),
        "default_agent": text("claude"),
        "reviewer_agent": text(),
        "max_review_rounds": integer(3, 1, 100),
        "idle_reminder": flag(True),
        "idle_reminder_after": number(10.0, 0, 86400),
        "scan_interval": number(30.0, 0.5, 86400),
        "recover_on_start": flag(True),
        "sandbox": choice("auto", "auto", "required", "off"),
        "tmux": table(TmuxConfig),
        "validate": table(ValidateConfig),
        "forge": table(ForgeConfig),
        "land": table(LandConfig),
        "cluster": table(ClusterConfig),
        "agents": tables(AgentProfile),
    }
    ATTRS = {"validate": "validate_"}

    root: str = ""  # resolved at load time (not read from the file)

    def checked(self) -> None:
        builtin = PROFILE_NAMES  # (the names only: reading the config loads no agent module)
        for name, profile in self.agents.items():
            if name not in builtin and not profile.command:
                raise ValueError(f"agents.{name}.command is required (the program to run, e.g. [\"my-agent\"])")
        known = sorted({*builtin, *self.agents})
        for key in ("default_agent", "reviewer_agent"):
            name = getattr(self, key)
            if name and name not in known:
                raise ValueError(f"{key} = {name!r} is not an agent profile (known: {', '.join(known)}); define it "
                                 f"under [agents.{name}] or name one of those")

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
        builtin = builtin_profile(name)
        if name in self.agents:
            own = self.agents[name]
            if builtin is not None:
                return builtin.copy(**{k: getattr(own, k) for k in own.given})
            return own
        if builtin is not None:
            return builtin
        known = ", ".join(sorted({*PROFILE_NAMES, *self.agents}))
        raise OrchError(f"unknown agent {name!r} (known: {known}); define it under [agents.{name}] in config.toml")


TASKS_DIR_CACHE = "tasks_dir"  # read by workspace.cached_tasks_dir on the hot path


def load(ws: Workspace) -> Config:
    raw = _read(ws.config_file, ws.root, ws.path(PARSED_CACHE))
    try:
        cfg = build(Config, raw)
    except Problem as exc:
        raise OrchError(f"{ws.config_file}: {explain(exc)}") from None
    cfg.root = ws.root
    problem = overlap(cfg)
    if problem:
        raise OrchError(f"{ws.config_file}: {problem}")
    _cache_tasks_dir(ws, cfg)
    return cfg


PARSED_CACHE = "config.parsed"  # config.toml's text and its parsed tables (marshal): TOML is parsed once per change


def _read(path: str, root: str, cache: str) -> dict:
    """config.toml's tables. Taken from the cache when it holds this very text (compared whole, not by time)."""
    import marshal

    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        raise OrchError(f"{path} is missing: run `orch init` in {root}") from None
    try:
        with open(cache, "rb") as fh:
            text, raw = marshal.loads(fh.read())
        if text == data and isinstance(raw, dict):
            return raw
    except (OSError, ValueError, EOFError, TypeError):
        pass
    import tomllib

    try:
        raw = tomllib.loads(data.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise OrchError(f"{path}: not valid TOML ({exc})") from None
    try:
        from orch.files import atomic_write

        atomic_write(cache, marshal.dumps((data, raw)), mode=0o600)
    except (OSError, ValueError):  # (a date in the file is not kept: parsed each time)
        pass
    return raw


def explain(problem: Problem) -> str:
    """One problem of the config, in plain words: the key, its table, and what is wrong."""
    loc = problem.loc
    key, where = (loc[-1], ".".join(loc[:-1])) if loc else ("", "")
    if problem.unknown:
        if where and key in Config.FIELDS:
            return (f"{key} is not a setting of [{where}]: in TOML a key belongs to the last [table] above it, so "
                    f"`{key} = ...` written after [{where}] lands in it; move it above the first [table]")
        known = ", ".join(sorted(_fields(where)))
        return f"unknown setting {key!r}{f' in [{where}]' if where else ''} (known: {known})"
    if not loc:
        return problem.message
    return f"{key}{f' in [{where}]' if where else ''}: {problem.message}"


def _fields(where: str) -> list[str]:
    """The keys of a table (``validate``, ``agents.NAME``)."""
    parts = where.split(".") if where else []
    fields = Config.FIELDS
    while parts:
        spec = fields.get(parts.pop(0))
        if spec is None or spec.of is None:
            return []
        if spec.shape == "tables":
            if not parts:
                return []
            parts.pop(0)
        fields = spec.of.FIELDS  # type: ignore[attr-defined]
    return [k for k in fields if k != "name"]


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
