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
    """The run of a task placed here: ``{"workflow", "run", "since"}``, and once it ended here ``"outcome"``: the
    state it ended in (ready, done), "failed", "stopped" (this host stopped) or "closed"."""
    os.makedirs(_folder(clone), mode=0o700, exist_ok=True)
    atomic_write(os.path.join(_folder(clone), slug + ".json"), json.dumps(run).encode())


def get(clone: str, slug: str) -> dict | None:
    """A task's recorded run; None when there is none (or the file is not one)."""
    try:
        with open(os.path.join(_folder(clone), slug + ".json"), encoding="utf-8") as fh:
            run = json.load(fh)
        return {"workflow": str(run["workflow"]), "run": int(run["run"]), "since": float(run["since"]),
                "outcome": str(run.get("outcome", ""))}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def recorded(clone: str) -> dict[str, dict]:
    """Every task's recorded run (a file that is not one is passed over)."""
    folder = _folder(clone)
    names = sorted(n.removesuffix(".json") for n in os.listdir(folder)) if os.path.isdir(folder) else []
    return {slug: run for slug in names if (run := get(clone, slug)) is not None}


def forget(clone: str, slug: str) -> None:
    try:
        os.unlink(os.path.join(_folder(clone), slug + ".json"))
    except FileNotFoundError:
        pass


def fate(state: str, info: dict | None, mine: dict, host: str) -> str:
    """What becomes of this host's copy of a task whose run it no longer has in hand, from its workflow as the
    server tells it (``state``: "running", with where it is now; "ended", with its result; "gone": none the server
    knows of) and from the host's record of its run here (``mine``, with how it ended here): "wait" (the workflow
    still has it here in this run, or is about to place it again: the run ends by itself), "keep" (its run ended
    here, ready or failed: the copy waits for the person or the next round, as on one machine; also once the server
    has forgotten the workflow) or "close" (it went on elsewhere, or was closed)."""
    run = int(info.get("run", 0)) if info is not None else -1
    if state == "running":
        return "wait" if info is not None and info.get("host") in (host, "") and run == mine["run"] else "close"
    if state == "ended":
        ours = info is not None and info.get("host") == host and run == mine["run"]
        return "keep" if ours and info is not None and info.get("outcome") != "closed" else "close"
    return "keep" if mine.get("outcome") in (*FINAL, "failed") else "close"
