"""``python -m orch.withtoken FILE -- COMMAND...``: a worker without the sandbox gets its token this way.

orch writes the token to FILE (readable by you alone, in orch's state folder) and starts this in the worker's pane;
it reads the token, removes the file, puts the token in its environment (``ORCH_WORKER_TOKEN``) and becomes COMMAND.
So the token is never on a command line (which ``ps`` shows to every user) nor in tmux's environment; it lives only
in the environment of the worker's own processes. Standard library only: it starts with every worker.
"""

import os
import sys


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        sys.stderr.write("usage: python -m orch.withtoken FILE -- COMMAND...\n")
        return 2
    path, command = argv[0], argv[2:]
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, encoding="ascii") as fh:
            token = fh.read().strip()
        os.unlink(path)
    except (OSError, ValueError) as exc:
        sys.stderr.write(f"orch: cannot read this worker's token ({path}): {exc}\n")
        return 127
    os.environ["ORCH_WORKER_TOKEN"] = token
    try:
        os.execvp(command[0], command)
    except OSError as exc:
        sys.stderr.write(f"orch: cannot start {command[0]}: {exc.strerror or exc}\n")
    return 127


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
