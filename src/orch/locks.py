"""Advisory file locks (flock) in ``.orch/locks``: released by the kernel when a holder dies. Hot path safe."""

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def hold(path: str, wait: float | None = None) -> Iterator[bool]:
    """Hold an exclusive lock on ``path``; yields False when it could not be had within ``wait`` seconds.

    ``wait=None`` waits as long as it takes; ``wait=0`` tries once.
    """
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    except FileNotFoundError:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    got = False
    try:
        if wait is None:
            fcntl.flock(fd, fcntl.LOCK_EX)
            got = True
        else:
            deadline = time.monotonic() + wait
            delay = 0.002
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    got = True
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        break
                    time.sleep(delay)
                    delay = min(delay * 2, 0.05)
        yield got
    finally:
        if got:
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
