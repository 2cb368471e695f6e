"""A host's record of the run of each task placed on it (``.orch/host-runs/<task>.json`` in its clone: the task's
workflow, its run, since when by the server's clock), and the decision of what becomes of a copy of a task whose
run the host no longer has in hand (``fate``). Standard library only."""

from __future__ import annotations

import json
import os

from orch.files import atomic_write
from orch.fleet import FINAL

FOLDER = "host-runs"


def _folder(clone: str) -> str:
    return os.path.join(clone, ".orch", FOLDER)


def note(clone: str, slug: str, run: dict) -> None:
    """The run of a task placed here: ``{"workflow", "run", "since"}``."""
    os.makedirs(_folder(clone), mode=0o700, exist_ok=True)
    atomic_write(os.path.join(_folder(clone), slug + ".json"), json.dumps(run).encode())


def recorded(clone: str) -> dict[str, dict]:
    """Every task's recorded run (a file that is not one is passed over)."""
    folder = _folder(clone)
    found = {}
    for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
        try:
            with open(os.path.join(folder, name), encoding="utf-8") as fh:
                run = json.load(fh)
            found[name.removesuffix(".json")] = {"workflow": str(run["workflow"]), "run": int(run["run"]),
                                                 "since": float(run["since"])}
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return found


def forget(clone: str, slug: str) -> None:
    try:
        os.unlink(os.path.join(_folder(clone), slug + ".json"))
    except FileNotFoundError:
        pass


def fate(state: str, info: dict | None, mine: dict, host: str) -> str:
    """What becomes of this host's copy of a task whose run it no longer has in hand, from its workflow as the
    server tells it (``state``: "running", with where it is now; "ended", with its result; "gone"): "wait" (the
    workflow still has it here, in this run: the run ends by itself, and the task goes elsewhere), "keep" (its run
    ended here, ready: the copy waits for the person, as on one machine) or "close" (it went on elsewhere, or was
    closed, or its workflow is gone)."""
    ours = info is not None and info.get("host") == host and int(info.get("run", 0)) == mine["run"]
    if state == "running" and ours:
        return "wait"
    if state == "ended" and ours and info is not None and info.get("outcome") in FINAL:
        return "keep"
    return "close"
