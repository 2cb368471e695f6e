"""Runs one `orch exec` command inside a worker's shell pane, then leaves a shell there.

    python -m orch.runner OUT RC TIMEOUT -- PROGRAM [ARGS...]

The command's output goes to the pane and to OUT (its standard error to OUT's ``.err``); its exit code (124 on timeout, 127 when the program is missing)
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


def err_path(out_path: str) -> str:
    """Where the command's standard error goes, beside its output (``X.out`` -> ``X.err``)."""
    return out_path[: -len(".out")] + ".err" if out_path.endswith(".out") else out_path + ".err"


def run(out_path: str, rc_path: str, timeout: float, argv: list[str]) -> int:
    """The command, its standard output into OUT and its standard error into OUT's ``.err`` (both also shown in the
    pane); its exit code."""
    with open(out_path, "ab", buffering=0) as out, open(err_path(out_path), "ab", buffering=0) as err:
        try:
            proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        except (FileNotFoundError, PermissionError) as exc:
            msg = f"orch exec: cannot run {argv[0]!r}: {exc.strerror}\n".encode()
            err.write(msg)
            os.write(2, msg)
            return 127 if isinstance(exc, FileNotFoundError) else 126
        assert proc.stdout is not None and proc.stderr is not None
        sinks = {proc.stdout.fileno(): (out, 1), proc.stderr.fileno(): (err, 2)}
        deadline = time.monotonic() + timeout if timeout > 0 else None
        timed_out = False
        while sinks:
            wait = None if deadline is None else max(deadline - time.monotonic(), 0)
            ready, _, _ = select.select(list(sinks), [], [], wait)
            if not ready:
                timed_out = True
                break
            for fd in ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    del sinks[fd]
                    continue
                sink, shown = sinks[fd]
                sink.write(chunk)
                os.write(shown, chunk)
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
            err.write(msg)
            os.write(2, msg)
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
