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


def keep_replaced(path: str, keep: str) -> None:
    """Before orch replaces ``path``: a hard link ``keep`` to the file being replaced. An editor that opened that file
    before and writes to it later writes there, not to the new file; ``late_write`` finds it."""
    tmp = keep + ".new"
    try:
        os.makedirs(os.path.dirname(keep), mode=0o700, exist_ok=True)
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        os.link(path, tmp)
        os.replace(tmp, keep)
        st = os.stat(keep)
        with open(keep + ".stat", "w", encoding="ascii") as fh:
            fh.write(f"{st.st_mtime_ns} {st.st_size}\n")
    except OSError:
        pass  # another file system (a task folder elsewhere), no links: only this safety net is missing


def note_written(keep: str, data: bytes) -> None:
    """What orch wrote to the live file (its hash), beside the kept old one."""
    import hashlib

    try:
        with open(keep + ".stat", "a", encoding="ascii") as fh:
            fh.write(hashlib.sha256(data).hexdigest() + "\n")
    except OSError:
        pass


def late_write(keep: str) -> tuple[bytes, str] | None:
    """(content, hash of what orch then wrote to the live file) when the kept old file was written to after orch
    replaced it, once; None otherwise."""
    try:
        with open(keep + ".stat", encoding="ascii") as fh:
            lines = fh.read().split("\n")
        mtime, size = (int(x) for x in lines[0].split())
        st = os.stat(keep)
    except (OSError, ValueError):
        return None
    if (st.st_mtime_ns, st.st_size) == (mtime, size):
        return None
    with open(keep, "rb") as fh:
        data = fh.read(8 << 20)
    try:
        os.unlink(keep + ".stat")  # handled once
    except OSError:
        pass
    return data, (lines[1] if len(lines) > 1 else "")


def sweep_tmp(folder: str, older_than: float = 600.0) -> int:
    """Remove the temporary copies of writes that a kill interrupted (``.orch-tmp-*``, never renamed into place)."""
    removed = 0
    try:
        names = [n for n in os.listdir(folder) if n.startswith(TMP_PREFIX)]
    except OSError:
        return 0
    for name in names:
        path = os.path.join(folder, name)
        try:
            if time.time() - os.lstat(path).st_mtime > older_than:
                os.unlink(path)
                removed += 1
        except OSError:
            continue
    return removed


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
