"""The `orch` command. Hot commands (`orch -`, `orch message`) are dispatched here, before the CLI framework loads."""

import os
import sys

HOT = ("-", "message", "verdict", "hook")


def _split_global(args: list[str]) -> tuple[str | None, list[str]]:
    """Take a leading ``-C PATH`` (or ``-C=PATH``/``--workspace PATH``) off the arguments."""
    explicit = None
    while args:
        head = args[0]
        if head in ("-C", "--workspace") and len(args) > 1:
            explicit, args = args[1], args[2:]
        elif head.startswith("-C=") or head.startswith("--workspace="):
            explicit, args = head.split("=", 1)[1], args[1:]
        else:
            break
    return explicit, args


def private_umask() -> None:
    """Nothing orch makes is world-writable, whatever the umask it was started with."""
    os.umask(os.umask(0o002) | 0o002)


def main(argv: list[str] | None = None) -> int:
    code = _main(list(sys.argv[1:] if argv is None else argv))
    if argv is None:  # the program itself: what it wrote is flushed, then it ends without tearing the interpreter
        end(code)    # down module by module (a tenth of a short command's time; every file it wrote is closed)
    return code


def end(code: int) -> None:
    try:
        sys.stdout.flush()
    except (OSError, ValueError):  # a closed pipe (`orch status | head`): what was read is what counts
        pass
    try:
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    os._exit(code)


def _main(args: list[str]) -> int:
    private_umask()
    explicit, rest = _split_global(args)
    if rest and rest[0] in HOT:
        from orch import hot

        handler = {"verdict": hot.verdict, "hook": hot.hook}.get(rest[0], hot.message)
        return handler(rest[1:], explicit)
    from orch.hot import full_python

    full_python()  # started by the lean launcher (python -S): the CLI needs site-packages
    from orch.cli.app import run

    return run(args)
