"""The conflict radar and `paths:`, on real tmux and git with the scripted agent."""

from __future__ import annotations

import pytest

from orch.store import Store
from orch.workflow.radar import overlap
from tests.kit.harness import Workspace, wait_for

SAME_LINES = """\
Change the greeting ({who}).

```scripted
coder:
  write greeting.txt "hello from {who}\\n"
  commit "greeting: {who}"
  report "needs input: is '{who}' the right word?"
```
"""


@pytest.mark.tmux
@pytest.mark.e2e
def test_two_tasks_on_the_same_lines_are_told_once_before_either_is_ready(ws: Workspace) -> None:
    ws.task("alpha", SAME_LINES.format(who="alpha"))
    ws.task("beta", SAME_LINES.format(who="beta"))
    ws.wait_state("alpha", "needs-input", timeout=60)
    ws.wait_state("beta", "needs-input", timeout=60)

    def told() -> bool:
        ws.scan()
        return all(any("conflict radar" in s for s in ws.statuses(slug)) for slug in ("alpha", "beta"))

    wait_for(told, 30, "both tasks told of their conflict")
    found = ws.inproc("conflicts", "--json").json()
    assert found["pairs"] == [{"a": "alpha", "b": "beta", "paths": ["greeting.txt"]}]
    assert found["with_base"] == {"alpha": [], "beta": []}
    for _ in range(3):
        ws.scan()
    store = Store(str(ws.root / ".orch" / "orch.db"))
    typed = [e.text for e in store.events(limit=1000, kind="typed") if "conflict note" in e.text]
    assert len(typed) == 2, typed  # one note to each coder, once
    assert sorted(r.task for r in store.reactions("alpha") + store.reactions("beta")) == ["alpha", "beta"]
    for slug, other in (("alpha", "beta"), ("beta", "alpha")):
        lines = [s for s in ws.statuses(slug) if "conflict radar" in s]
        assert lines == [f"conflict radar: its branch and {other}'s both change greeting.txt: merging both would "
                         "conflict (its coder was told)"]
        t = ws.task_status(slug)
        assert t["state"] == "needs-input" and t["conflicts"]["with"] == {other: ["greeting.txt"]}
    table = ws.inproc("status").out
    assert "CONFLICTS" in table and "beta" in table.split("alpha", 1)[1].splitlines()[0]
    matrix = ws.inproc("conflicts").out
    assert "alpha x beta: greeting.txt" in matrix
    assert ws.inproc("status", "alpha").out.count("with beta: greeting.txt") == 1


API = """\
---
paths: ["src/api/**"]
---
Rework the API.

```scripted
coder:
  write src/api/handlers.py "x = 1\\n"
  commit "api: handlers"
  report "needs input: keep the old names?"
```
"""

API2 = """\
---
paths: ["src/api/*.py"]{more}
---
Add a route.

```scripted
coder:
  report "needs input: which path?"
```
"""


@pytest.mark.tmux
@pytest.mark.e2e
def test_a_queued_task_whose_paths_overlap_waits_until_the_other_is_closed(ws: Workspace) -> None:
    ws.task("api", API)
    ws.wait_state("api", "needs-input", timeout=60)
    ws.task("routes", API2.format(more=""))
    ws.task("loose", API2.format(more="\nparallel: true"))
    ws.wait_state("loose", "needs-input", timeout=60)  # parallel: true starts at once
    for _ in range(2):
        ws.scan()
    t = ws.task_status("routes")
    assert t["state"] == "queued" and t["workers"] == []
    assert "waiting for: api: overlaps src/api/*.py, loose: overlaps src/api/*.py" in t["summary"]
    assert "waiting: routes (for api: overlaps src/api/*.py, loose: overlaps src/api/*.py)" in ws.scan().out
    ws.orch("close", "api", "--force")
    ws.scan()
    assert ws.task_status("routes")["state"] == "queued"  # loose is still at work on src/api
    assert "waiting for: loose: overlaps src/api/*.py" in ws.task_status("routes")["summary"]
    ws.orch("close", "loose", "--force")
    ws.wait_state("routes", "needs-input", timeout=60)


def test_paths_overlap() -> None:
    assert overlap(["src/api/*.py"], [], ["src/api/x.py"]) == "src/api/*.py"
    assert overlap(["src/api/*.py"], ["src/api/**"], []) == "src/api/*.py"
    assert overlap(["docs/**"], ["src/**"], ["src/a.py"]) is None
    assert overlap(["src/**"], ["src/api/v1/*.py"], []) == "src/**"
    assert overlap(["README.md"], ["*.md"], []) == "README.md"
