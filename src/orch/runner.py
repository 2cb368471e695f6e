"""Runs one `orch exec` command inside a worker's shell pane, then leaves a shell there.

    python -m orch.runner OUT RC TIMEOUT -- PROGRAM [ARGS...]

The command's output goes to the pane and to OUT; its exit code (124 on timeout, 127 when the program is missing)
is written to RC once the command has ended. The command gets its own process group, killed on timeout.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time


def _write_rc(path: str, code: int) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="ascii") as fh:
        fh.write(f"{code}\n")
    os.replace(tmp, path)


def run(out_path: str, rc_path: str, timeout: float, argv: list[str]) -> int:
    with open(out_path, "ab", buffering=0) as out:
        try:
            proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        except (FileNotFoundError, PermissionError) as exc:
            msg = f"orch exec: cannot run {argv[0]!r}: {exc.strerror}\n".encode()
            out.write(msg)
            os.write(1, msg)
            return 127 if isinstance(exc, FileNotFoundError) else 126
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        deadline = time.monotonic() + timeout if timeout > 0 else None
        timed_out = False
        while True:
            wait = None if deadline is None else max(deadline - time.monotonic(), 0)
            ready, _, _ = select.select([fd], [], [], wait)
            if not ready:
                timed_out = True
                break
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            out.write(chunk)
            os.write(1, chunk)
        if timed_out:
            for sig, grace in ((signal.SIGTERM, 2.0), (signal.SIGKILL, 5.0)):
                try:
                    os.killpg(proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    proc.wait(grace)
                    break
                except subprocess.TimeoutExpired:
                    continue
            msg = f"\norch exec: timed out after {timeout:g}s\n".encode()
            out.write(msg)
            os.write(1, msg)
            return 124
        return proc.wait()


def main() -> None:
    args = sys.argv[1:]
    out_path, rc_path, timeout = args[0], args[1], float(args[2])
    argv = args[4:] if args[3:4] == ["--"] else args[3:]
    code = run(out_path, rc_path, timeout, argv)
    _write_rc(rc_path, code)
    os.write(1, f"\r\n[orch exec: exit {code}]\r\n".encode())
    shell = os.environ.get("SHELL") or "/bin/sh"
    try:
        os.execvp(shell, [shell])
    except OSError:
        os._exit(0)


if __name__ == "__main__":
    main()
