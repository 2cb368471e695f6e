"""orch's scripted test agent (``kind = "scripted"``): the program in ``scripted_program.py``, which reports its
turns through `orch hook` (start, prompt, stop, wait) and its work through `orch -`, like an agent with hooks."""

from __future__ import annotations

import sys

from orch.agents.base import Agent
from orch.agents.profile import AgentProfile


class Scripted(Agent):
    kind = "scripted"

    def profiles(self) -> dict[str, AgentProfile]:
        return {"scripted": AgentProfile(
            name="scripted",
            kind="scripted",
            command=[sys.executable, "-m", "orch.agents.scripted_program"],
            prompt="paste",
            ready_pattern=r"^scripted> *$",
            ready_timeout=20.0,
            enter_delay=0.0,
            hooks=True,
            env={"ORCH_SCRIPTED_HOOKS": "1"},
            screen_idle=r"^scripted> *\Z",
            screen_working=r"^(step \d+|received message \d+)[^\n]*\Z",
            screen_waiting=r"^\(waiting for permission\)[^\n]*\Z",
        )}


AGENT = Scripted()
