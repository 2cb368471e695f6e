"""orch's scripted test agent (``kind = "scripted"``): the program in ``scripted_program.py``, which reports its
turns through `orch hook` (start, prompt, stop, wait) and its work through `orch -`, like an agent with hooks."""

from __future__ import annotations

import os
import sys

from orch.agents.base import Agent, LaunchRequest
from orch.agents.profile import AgentProfile
from orch.files import touch


class Scripted(Agent):
    kind = "scripted"

    def profiles(self) -> dict[str, AgentProfile]:
        return {"scripted": AgentProfile.builtin(
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


    def sandbox_write(self, req: LaunchRequest) -> list[str]:
        """The record of what it received (the tests read it)."""
        path = record_file(req.state_dir, req.worker_id)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        touch(path, 0o644)
        return [path]


def record_file(state_dir: str, worker_id: str) -> str:
    return os.path.join(state_dir, "logs", f"scripted-{worker_id.replace(':', '-')}.jsonl")


AGENT = Scripted()
