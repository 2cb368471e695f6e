"""Durable file writes: a reader sees the old file or the new one, never a torn one.

Used for every file orch writes (task files, config, dossiers, agents' settings). The process remembers what it
wrote last to each path (``written_by_us``), so a file watcher in the same process (the daemon) can tell its own
writes from a person's.
"""

from __future__ import annotations

import os
import time

TMP_PREFIX = ".orch-tmp-"

# what this process last wrote to each file, as (inode, mtime_ns, size): a file watcher in the same process (the
# daemon) tells its own writes from a person's by it
WRITTEN: dict[str, tuple[int, int, int]] = {}


def atomic_write(path: str, data: bytes, mode: int | None = None) -> None:
    """Write ``data`` to ``path`` so that readers see the old or the new file, never a torn one."""
    tmp = write_tmp(path, data, mode)
    replace(tmp, path)


def replace(tmp: str, path: str) -> None:
    st = os.stat(tmp)
    os.replace(tmp, path)
    WRITTEN[os.path.abspath(path)] = (st.st_ino, st.st_mtime_ns, st.st_size)
    fsync_dir(os.path.dirname(path) or ".")


def written_by_us(path: str) -> bool:
    """Is the file at ``path`` still exactly what this process last wrote there?"""
    try:
        st = os.stat(path)
    except OSError:
        return False
    return WRITTEN.get(os.path.abspath(path)) == (st.st_ino, st.st_mtime_ns, st.st_size)


def write_tmp(path: str, data: bytes, mode: int | None = None) -> str:
    """A durable copy of ``data`` beside ``path`` (same folder, so a rename replaces the file atomically)."""
    folder = os.path.dirname(path) or "."
    tmp = os.path.join(folder, f"{TMP_PREFIX}{os.urandom(6).hex()}")
    if mode is None:
        try:
            mode = os.stat(path).st_mode & 0o7777
        except FileNotFoundError:
            mode = 0o644
    mode &= ~0o002  # never world-writable
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise
    os.close(fd)
    os.chmod(tmp, mode)
    return tmp


def fsync_dir(folder: str) -> None:
    try:
        dfd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


def read_all(fd: int) -> bytes:
    chunks: list[bytes] = []
    offset = 0
    while True:
        chunk = os.pread(fd, 1 << 20, offset)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        offset += len(chunk)


def settled(fd: int) -> bytes:
    """The file's content once two readings agree (a save in progress has finished)."""
    last = read_all(fd)
    for _ in range(20):
        time.sleep(0.005)
        again = read_all(fd)
        if again == last:
            return again
        last = again
    return last


def same_file(fd: int, path: str) -> bool:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    own = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (own.st_dev, own.st_ino)
