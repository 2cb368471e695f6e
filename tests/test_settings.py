"""The checked settings behind config.toml and the agent profiles (``orch.settings``): types, ranges, unknown
keys, copies, and the plain-words errors `orch` prints for them."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest

from orch.agents.profile import AgentProfile
from orch.config import Config, explain
from orch.settings import Problem, build


def problem(raw: dict) -> str:
    with pytest.raises(Problem) as caught:
        build(Config, raw)
    return explain(caught.value)


def test_defaults_types_and_aliases() -> None:
    cfg = build(Config, {"default_agent": "scripted", "validate": {"commands": ["make test"], "timeout": 5}})
    assert cfg.validate_.commands == ["make test"] and cfg.validate_.timeout == 5.0
    assert isinstance(cfg.validate_.timeout, float)
    assert cfg.tmux.socket == "orch" and cfg.max_review_rounds == 3 and cfg.sandbox == "auto"
    assert cfg.given == {"default_agent", "validate"}
    other = build(Config, {})
    assert other.validate_.write == [] and other.validate_.write is not cfg.validate_.write


@pytest.mark.parametrize(("raw", "said"), [
    ({"colour": 1}, "unknown setting 'colour' (known: agents, base,"),
    ({"tmux": {"max_review_rounds": 5}}, "max_review_rounds is not a setting of [tmux]: in TOML a key belongs"),
    ({"agents": {"mine": {"comand": "x"}}}, "unknown setting 'comand' in [agents.mine] (known: command,"),
    ({"scan_interval": math.nan}, "scan_interval: must be a finite number, not nan"),
    ({"scan_interval": 0.1}, "scan_interval: must be at least 0.5 (it is 0.1)"),
    ({"validate": {"timeout": math.inf}}, "timeout in [validate]: must be a finite number, not inf"),
    ({"validate": {"timeout": 0}}, "timeout in [validate]: must be more than 0 (it is 0)"),
    ({"max_review_rounds": 101}, "max_review_rounds: must be at most 100 (it is 101)"),
    ({"max_review_rounds": 2.5}, "max_review_rounds: must be a whole number, not 2.5"),
    ({"max_review_rounds": True}, "max_review_rounds: must be a whole number, not true"),
    ({"idle_reminder": "yes"}, "idle_reminder: must be true or false, not a string"),
    ({"tasks_dir": 5}, "tasks_dir: must be a string, not 5"),
    ({"sandbox": "maybe"}, "sandbox: must be one of 'auto', 'required', 'off', not 'maybe'"),
    ({"validate": {"commands": "make"}}, "commands in [validate]: must be a list of strings, not a string"),
    ({"validate": 3}, "validate: must be a table, not 3"),
    ({"tmux": {"socket": "-x"}}, "socket in [tmux]: must be a plain name"),
    ({"tmux": {"socket": "a b"}}, "socket in [tmux]: must be a plain name"),
    ({"agents": {"mine": {"command": ["x"], "env": {"A": 1}}}}, "env in [agents.mine]: must be a table of strings"),
    ({"agents": {"mine": {"command": "x", "ready_pattern": "("}}}, "ready_pattern in [agents.mine]: not a valid "
                                                                     "regular expression"),
    ({"agents": {"mine": {"command": "'unclosed"}}}, "command in [agents.mine]: cannot be split into words"),
    ({"agents": {"mine": {"prompt": "paste"}}}, "agents.mine.command is required"),
    ({"default_agent": "nope"}, "default_agent = 'nope' is not an agent profile (known: aider, claude, codex"),
])
def test_each_problem_is_named_in_plain_words(raw: dict, said: str) -> None:
    assert problem(raw).startswith(said)


def test_profiles_merge_only_what_the_person_set() -> None:
    cfg = build(Config, {"agents": {"claude": {"ready_timeout": 5}, "mine": {"command": "my-agent --yes"}}})
    claude = cfg.profile("claude")
    assert claude.ready_timeout == 5.0 and claude.command == ["claude"] and claude.hooks is True
    assert cfg.agents["mine"].command == ["my-agent", "--yes"] and cfg.agents["mine"].name == "mine"
    assert cfg.profile("claude") == claude and cfg.profile("claude") is not claude
    copied = claude.copy(env={"A": "b"})
    assert copied.env == {"A": "b"} and claude.env == {} and "env" in copied.given
    with pytest.raises(Problem, match="must be more than 0"):
        claude.copy(ready_timeout=0)
    with pytest.raises(Problem, match="unknown setting 'colour'"):
        AgentProfile(command=["x"], colour="red")


def test_reading_the_config_loads_no_validation_framework() -> None:
    probe = ("import sys\nfrom orch.settings import build\nfrom orch.config import Config\n"
             "build(Config, {'default_agent': 'scripted'})\n"
             "print(sorted(m for m in ('pydantic', 'typer', 'click', 'rich', 'yaml') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_every_built_in_profile_passes_the_checks_it_skips_at_start() -> None:
    """Built-in profiles are made without compiling their patterns (a command's start-up); here they are."""
    from orch.agents import builtin_profiles

    for name, profile in builtin_profiles().items():
        again = build(AgentProfile, {k: getattr(profile, k) for k in profile.given}, ("agents", name))
        assert again == profile
    with pytest.raises(Problem, match="not a valid regular expression"):
        AgentProfile(command=["x"], screen_idle="(")
    assert AgentProfile.builtin(command=["x"], screen_idle="(").screen_idle == "("  # (the suite's job, above)


def test_the_profile_names_known_without_the_agent_modules_are_theirs() -> None:
    from orch.agents import PROFILE_NAMES, builtin_profiles

    assert set(PROFILE_NAMES) == set(builtin_profiles())
