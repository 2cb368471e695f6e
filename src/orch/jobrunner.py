"""A background job of orch: ``python -m orch.jobrunner <job file>``, started by a pass and left to run on its own.

The job file (``.orch/jobs/<task>/<name>.json``) says what to do; the runner holds an exclusive lock on it for as
long as it runs (so that a pass can tell a running job from one that died with its machine), writes its pid beside
it, and writes its result (``<name>.result.json``) atomically when it is done. It survives the pass, the daemon
and their restarts; a later pass collects the result. Kinds:

- ``validate``: the task's validation commands, one after the other (all of them, so the coder sees every
  failure), each with its timeout, through ``proc.run_shell`` (inside the sandbox its coder has, when the job says
  so: the code they run is the coder's); the full output of each goes to ``.orch/runs/``.
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
import time

from orch import proc
from orch.entry import private_umask
from orch.files import atomic_write

TAIL_LINES = 20


def tail(output: bytes, lines: int = TAIL_LINES) -> str:
    text = output.decode("utf-8", "replace").replace("\r\n", "\n").rstrip("\n")
    return "\n".join(text.split("\n")[-lines:])


def validate(spec: dict) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCH_WORKER_TOKEN")}
    os.makedirs(spec["runs"], exist_ok=True)
    results = []
    for n, command in enumerate(spec["commands"], 1):
        ran = proc.run_shell(command, spec["worktree"], spec["timeout"], env, spec.get("sandbox") or ())
        log_path = os.path.join(spec["runs"], f"{spec['task']}-r{spec['round']}-{spec['sha'][:12]}-{n}.log")
        where = "in the sandbox" if spec.get("sandbox") else "no sandbox"
        header = f"$ {command}\n# cwd {spec['worktree']} ({where}), exit {ran.exit_code}, {ran.duration:.2f}s\n".encode()
        atomic_write(log_path, header + ran.output, mode=0o600)
        results.append({"command": command, "exit_code": ran.exit_code, "duration": round(ran.duration, 3),
                        "timed_out": ran.timed_out, "tail": tail(ran.output), "log": log_path, "at": time.time()})
    return {"results": results}


KINDS = {"validate": validate}


def main(path: str) -> int:
    private_umask()
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return 0  # another runner has it
    stem = path[: -len(".json")]
    with open(stem + ".pid.tmp", "w", encoding="ascii") as fh:  # (whole or not there: a reader never sees it empty)
        fh.write(f"{os.getpid()}\n")
    os.replace(stem + ".pid.tmp", stem + ".pid")
    with open(path, encoding="utf-8") as fh:
        spec = json.load(fh)
    started = time.time()
    try:
        result = KINDS[spec["kind"]](spec)
    except Exception as exc:  # noqa: BLE001 - the job's own failure is its result
        result = {"error": f"{type(exc).__name__}: {exc}"}
    result.update(started=started, finished=time.time())
    atomic_write(stem + ".result.json", (json.dumps(result) + "\n").encode(), mode=0o600)
    _wake(spec)
    return 0


def _wake(spec: dict) -> None:
    """A note in the workspace's inbox, so that a running daemon takes the result at once."""
    from orch import inbox
    from orch.workspace import Workspace

    try:
        inbox.write(Workspace(spec["workspace"]), {"kind": "job", "task": spec["task"], "text": spec["name"],
                                                   "token": ""})
    except (OSError, KeyError):
        pass  # the next full pass collects it all the same


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
