"""The agents orch knows, one module each behind one protocol (``base.Agent``): generic, scripted, claude, codex,
aider. They are registered the way another agent would be: ``register(agent)``. The registry loads on first use,
so that running the scripted agent's program (``python -m orch.agents.scripted_program``) loads none of this.

Adding an agent is one new module with an ``AGENT`` object, listed in ``BUILT_IN``, and its tests.
"""

from __future__ import annotations

import functools
import sys

TYPE_CHECKING = False

if TYPE_CHECKING:
    from orch.agents.base import Agent
    from orch.agents.profile import AgentProfile

BUILT_IN = ("generic", "scripted", "claude", "codex", "aider")
# the names of the built-in profiles, known without loading the agent modules (checked against them by a test)
PROFILE_NAMES = ("aider", "claude", "codex", "scripted")
_REGISTRY: dict[str, Agent] = {}
_ALL: list[bool] = []  # every built-in module loaded
_PROFILES: dict[str, AgentProfile] = {}  # built-in profiles built so far


def register(agent: Agent) -> None:
    _REGISTRY[agent.kind] = agent


def _one(kind: str) -> None:
    """Load one built-in agent's module (a command that needs one agent loads that one)."""
    if kind not in _REGISTRY and kind in BUILT_IN:
        __import__(f"orch.agents.{kind}")
        register(sys.modules[f"orch.agents.{kind}"].AGENT)


def _load() -> dict[str, Agent]:
    if not _ALL:
        for name in BUILT_IN:
            _one(name)
        _ALL.append(True)
    return _REGISTRY


def kinds() -> frozenset[str]:
    return frozenset(_load())


def agent(kind: str) -> Agent:
    """The agent module for a profile's ``kind``."""
    _one(kind)
    return (_REGISTRY if kind in _REGISTRY else _load())[kind]


def own_files() -> tuple[str, ...]:
    """The patterns of every known agent's own caches in a worktree (``Agent.own_files``)."""
    return tuple(sorted({p for a in _load().values() for p in a.own_files}))


def builtin_profiles() -> dict[str, AgentProfile]:
    """The profiles orch knows (fresh copies: a caller may change its own)."""
    return {name: p.copy() for name, p in _builtin().items()}


def builtin_profile(name: str) -> AgentProfile | None:
    """One built-in profile (a fresh copy), or None; only the module of its agent is loaded (each built-in profile
    is named like its agent's kind)."""
    if name not in PROFILE_NAMES:
        return None
    if name not in _PROFILES:
        _PROFILES.update(agent(name).profiles())
    return _PROFILES[name].copy()


@functools.cache
def _builtin() -> dict[str, AgentProfile]:
    """Built once per process: a pass asks for every worker's profile."""
    for each in _load().values():
        for name, profile in each.profiles().items():
            _PROFILES.setdefault(name, profile)
    return {name: _PROFILES[name] for name in sorted(_PROFILES)}
