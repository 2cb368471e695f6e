"""Any command-line agent (``kind = "generic"``): orch starts its command, types or passes its prompt, and reads
its state from the screen patterns of its profile (and from `orch hook` if the profile says it calls it)."""

from __future__ import annotations

from orch.agents.base import Agent


class Generic(Agent):
    kind = "generic"


AGENT = Generic()
