"""The fault campaign (tests/kit/campaign.py): orch's passes killed at its fault points while real work goes on,
with git, disk and database faults; then nothing lost, nothing stuck. Two halves, so that both test workers share
the load. `make soak MINUTES=N` runs the same for a given time (ORCH_SOAK_SECONDS)."""

from __future__ import annotations

import os
import random

import pytest

from orch.taskfile import parse
from tests.kit.campaign import Campaign
from tests.kit.harness import Tally, Workspace, wait_for

FAULTS = int(os.environ.get("ORCH_CAMPAIGN_FAULTS", "500"))  # per half: 1,000 a run
SOAK = float(os.environ.get("ORCH_SOAK_SECONDS", "0"))  # `make soak`: each half injects faults for this long

pytestmark = [pytest.mark.reliability, pytest.mark.tmux, pytest.mark.timeout(SOAK + 900 if SOAK else 1800)]


@pytest.mark.parametrize("half", [1, 2])
def test_faults_at_every_point_lose_nothing_and_leave_nothing_stuck(ws: Workspace, tally: Tally, half: int,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    ws.config("idle_reminder = false")  # a lost report must show as a stuck task, not be fixed by a reminder
    monkeypatch.setenv("ORCH_NO_APPLY", "1")  # the workers' messages are applied by the passes under fault only
    campaign = Campaign(ws, tally, random.Random(20261129 + half))
    seconds = SOAK if SOAK else 900
    campaign.inject(FAULTS if not SOAK else 10**9, seconds)
    stuck = campaign.settle()
    lost = campaign.lost_messages()
    edits = campaign.lost_edits()
    tally.add("messages sent", len(campaign.sent))
    tally.add("messages lost", len(lost))
    tally.add("edits lost", len(edits))
    tally.add("tasks stuck", len(stuck))
    print(f"campaign {half}: {campaign.faults} faults, {len(campaign.sent)} messages, {len(campaign.edits)} edits, "
          f"{len(campaign.opened)} tasks ({len(campaign.closed)} closed)")
    assert campaign.faults >= FAULTS or SOAK
    assert not lost, lost[:10]
    assert not edits, edits[:10]
    assert not stuck, {s: campaign.state(s) for s in stuck}
    for path in [*ws.tasks.glob("*.md"), *ws.tasks.glob("done/*.md")]:
        parse(path.read_text())  # every task file is a task file


def test_orch_fault_in_the_environment_kills_a_command_at_that_point_and_the_next_pass_finishes(ws: Workspace) -> None:
    """`ORCH_FAULT=<point>:<n>` (README, Development): the n-th time the process reaches the point it dies of
    SIGKILL; a pass after it, without the fault, does what the killed one did not."""
    from tests.kit.campaign import task_text

    ws.task("cut", task_text("cut"))
    killed = ws.orch("scan", env={"ORCH_FAULT": "spawn.window:1"}, check=False)
    assert killed.code == -9, killed
    assert "state: coding" not in (ws.tasks / "cut.md").read_text()
    ws.orch("scan")
    wait_for(lambda: ws.scan() and ws.task_status("cut")["state"] != "coding", 60, "the coder's report")
    assert ws.task_status("cut")["state"] in ("validating", "reviewing", "ready")
