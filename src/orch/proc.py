"""The only module that runs programs other than tmux and git: the person's validation commands, and the
person's editor for `orch add --edit`.

A validation command is run exactly as the person wrote it in the task (or in config.toml), with ``sh -c`` as a
single argument (never assembled from other text), in its own process group so a timeout stops all of it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Sequence

from orch.errors import OrchError
from orch.record import dataclass


@dataclass
class Ran:
    command: str
    exit_code: int
    duration: float
    timed_out: bool
    output: bytes


def run_shell(command: str, cwd: str, timeout: float, env: dict[str, str] | None = None,
              prefix: Sequence[str] = ()) -> Ran:
    """``sh -c command`` in ``cwd`` (under ``prefix``: a sandbox's command line), its output and how it ended."""
    start = time.monotonic()
    proc = subprocess.Popen(
        [*prefix, "sh", "-c", command],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    timed_out = False
    try:
        out, _ = proc.communicate(timeout=timeout if timeout > 0 else None)
    except subprocess.TimeoutExpired:
        timed_out = True
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(3)
                break
            except subprocess.TimeoutExpired:
                continue
        out, _ = proc.communicate()
    code = 124 if timed_out else proc.returncode
    return Ran(command, code, time.monotonic() - start, timed_out, out or b"")


def edit(path: str) -> None:
    """Your editor ($VISUAL, else $EDITOR, else vi) on ``path``, in this terminal, until it exits."""
    import shlex

    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
    try:
        argv = shlex.split(editor)
    except ValueError:
        argv = [editor]
    try:
        code = subprocess.run([*argv, path], check=False).returncode
    except FileNotFoundError:
        raise OrchError(f"the editor {argv[0]!r} (from $VISUAL/$EDITOR) is not installed: set EDITOR") from None
    if code != 0:
        raise OrchError(f"the editor {argv[0]!r} exited with status {code}: nothing was added")


def detached(argv: list[str], env: dict[str, str], log_path: str) -> int:
    """Start ``argv`` (orch's own job runner) in a session of its own, so that it outlives the process that started
    it; its output goes to ``log_path``. Returns its pid."""
    with open(log_path, "ab") as log:
        child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
                                 start_new_session=True, close_fds=True)
    return child.pid
