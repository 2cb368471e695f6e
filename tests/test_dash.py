"""`orch dash` driven by Textual's test pilot over a scripted pipeline (real tmux, git, daemon, scripted agent)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from tests.kit.harness import ASKS, Workspace, reviewed_task, wait_for

pytestmark = [pytest.mark.tmux, pytest.mark.e2e]



async def until(pilot, check, timeout: float = 60.0, what: str = "condition"):  # noqa: ANN001, ANN201
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await pilot.pause(0.1)


def test_the_dashboard_groups_answers_and_shows_the_branch(ws: Workspace, tmp_path: Path) -> None:
    from textual.widgets import OptionList, Static

    from orch.dash.app import Dash
    from orch.workspace import Workspace as OrchWorkspace

    ws.daemon(tmp_path / "daemon.log").start()
    ws.task("ready-one", reviewed_task("A reviewed task.", ["verdict approve"]))
    ws.task("shed", ASKS)
    wait_for(lambda: ws.task_status("ready-one")["state"] == "ready", 90, "ready-one ready")

    async def drive() -> None:
        app = Dash(OrchWorkspace(str(ws.root)))
        async with app.run_test(size=(100, 30)) as pilot:
            options = app.query_one("#tasks", OptionList)

            def lines() -> list[str]:
                return [str(options.get_option_at_index(i).prompt) for i in range(options.option_count)]

            # the groups, in order of need: the question first, then what is ready
            await until(pilot, lambda: any(line.startswith("shed") for line in lines()) and
                        lines()[0].startswith("-- needs input") and "-- ready to land (1) --" in lines(),
                        what="shed under needs input at the top, ready-one ready")
            shown = lines()
            assert shown.index("-- needs input (1) --") < shown.index("-- ready to land (1) --")
            shed = next(line for line in shown if line.startswith("shed"))
            assert " - hook" in shed and shed.rstrip().endswith(" s"), shed  # its state, its source, its age
            assert app.needing == {"shed"}
            ready = next(line for line in shown if line.startswith("ready-one"))
            assert "ready - verdict approve on " in ready, ready  # a state with what it is at, and its age
            # its screen, live
            options.highlighted = options.get_option_index("shed")
            await until(pilot, lambda: "thinking about colours" in str(app.query_one("#screen-text", Static).content),
                        what="shed's screen")
            # answered from the dashboard
            await pilot.press("r")
            await pilot.press(*"blue")
            await pilot.press("enter")
            await until(pilot, lambda: "reply: typed into shed" in str(app.query_one("#said", Static).content),
                        what="the reply typed")
            # the ready task: its diff and its dossier
            options.highlighted = options.get_option_index("ready-one")
            await pilot.press("2")
            await until(pilot, lambda: "a.txt" in str(app.query_one("#diff-text", Static).content), what="the diff")
            await pilot.press("3")
            await until(pilot, lambda: "Merge-ready dossier: ready-one" in
                        str(app.query_one("#dossier-text", Static).content), what="the dossier")
            # land: the plan first, then the second press lands it
            await pilot.press("l")
            await until(pilot, lambda: "predicted: ready-one would land" in
                        str(app.query_one("#log-text", Static).content), what="the plan")
            await pilot.press("l")
            await until(pilot, lambda: "landed on main" in str(app.query_one("#said", Static).content),
                        what="landed", timeout=60)

    asyncio.run(drive())
    wait_for(lambda: ws.task_status("shed")["state"] != "needs-input", 30, "shed answered")
    assert ws.task_status("ready-one")["state"] == "merged"
