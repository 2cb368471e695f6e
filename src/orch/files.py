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


def touch(path: str, mode: int = 0o600) -> None:
    """``path`` exists (made with ``mode`` if it did not), and is not world-writable whatever the umask."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, mode)
    try:
        now = os.fstat(fd).st_mode
        if now & 0o002:
            os.fchmod(fd, now & 0o7777 & ~0o002)
    finally:
        os.close(fd)


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


KEEP = 500  # replaced files kept per task file at most, each for KEEP_SECONDS
KEEP_SECONDS = 3600.0
INDEX = "index"  # in a keep folder, per kept link: "<number> <mtime_ns> <size> <kept at> <mark> <orch's new copy>"
# (<mark>: what the caller says the kept file held, e.g. a digest of the person's text; "-" when nothing)


def _read_index(keep: str) -> dict[str, tuple[int, int, float, str, str]]:
    """number -> (mtime_ns, size, kept at, orch's new copy, mark)."""
    found: dict[str, tuple[int, int, float, str, str]] = {}
    try:
        with open(os.path.join(keep, INDEX), encoding="utf-8") as fh:
            for line in fh:
                parts = line.rstrip("\n").split(" ", 5)
                if len(parts) == 6 and parts[5].startswith("/"):
                    found[parts[0]] = (int(parts[1]), int(parts[2]), float(parts[3]), parts[5], parts[4])
                elif len(parts) >= 5:  # (a line of an older orch: no mark)
                    found[parts[0]] = (int(parts[1]), int(parts[2]), float(parts[3]), " ".join(parts[4:]), "-")
    except (OSError, ValueError):
        pass
    return found


def _private(path: str) -> int:
    """A file descriptor for writing ``path`` anew, readable and writable by its owner only, whatever the umask."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    os.fchmod(fd, 0o600)
    return fd


def _write_index(keep: str, index: dict[str, tuple[int, int, float, str, str]]) -> None:
    tmp = os.path.join(keep, f"{INDEX}.{os.getpid()}.tmp")
    with open(_private(tmp), "w", encoding="utf-8") as fh:
        fh.writelines(f"{n} {m} {s} {t} {mark or '-'} {new}\n"
                      for n, (m, s, t, new, mark) in sorted(index.items(), key=lambda kv: int(kv[0])))
    os.replace(tmp, os.path.join(keep, INDEX))


def _unreplaced(new: str) -> bool:
    """Whether the write that kept a link is not done: its new copy (a temporary file) is still there, not renamed
    over the file it kept (the write was killed in between)."""
    return os.path.lexists(new)


def _unlink_kept(keep: str, name: str) -> None:
    try:
        os.unlink(os.path.join(keep, name))
    except FileNotFoundError:
        pass


BASE = ".base"  # "<mark>.base" in a keep folder: the ``base`` given with that mark (one file for every link kept
# with it: the person's text rarely changes between two of orch's writes)


def kept_base(keep: str, mark: str) -> bytes | None:
    """The ``base`` given with ``mark`` to ``keep_replaced`` (whose mark is its SHA-256), or None (also when the
    file is not that text: a write cut short)."""
    import hashlib

    try:
        with open(os.path.join(keep, mark + BASE), "rb") as fh:
            base = fh.read()
    except OSError:
        return None
    return base if hashlib.sha256(base).hexdigest() == mark else None


def keep_replaced(path: str, keep: str, new: str, mark: str = "-", base: bytes | None = None,
                  seen: tuple[int, int] | None = None) -> None:
    """Before orch replaces ``path`` with the file ``new``: a hard link to the file being replaced, in the folder
    ``keep``. An editor that opened that file before (any time in the last hour) and writes to it later writes there,
    not to the new file; ``late_writes`` finds it. ``mark`` (no spaces) says what the replaced file held (given back
    by ``late_writes``), and ``base`` (kept beside it: ``kept_base``) the part of it a late save is merged on.
    ``mark`` is the SHA-256 of ``base`` when both are given. ``seen``: the (mtime_ns, size) of the file as the caller
    read it; a write to it since, even one before this
    call, is a late save. Called under the task file's lock."""
    try:
        os.makedirs(keep, mode=0o700, exist_ok=True)
        st = os.stat(path)
        index = _read_index(keep)
        now = time.time()
        number = ""
        for name, (_, _, _, old_new, _) in list(index.items()):
            link = os.path.join(keep, name)
            try:
                same = os.stat(link)
            except OSError:
                del index[name]
                continue
            if (same.st_dev, same.st_ino) == (st.st_dev, st.st_ino):
                number = name  # kept already by a write that did not replace it (killed): kept anew from now on,
                # since what was written to it until now is in the new file
            elif _unreplaced(old_new):  # kept by a killed write, and replaced since by the person, not by orch:
                del index[name]  # what they wrote to it was written to the live file then, not late
                _unlink_kept(keep, name)
                try:
                    os.unlink(old_new)
                except FileNotFoundError:
                    pass
        listed: list[str] = []
        if not number:
            listed = os.listdir(keep)
            names = [n for n in listed if n.isdigit()]
            for orphan in set(names) - set(index):  # linked by a write killed before it wrote the index
                _unlink_kept(keep, orphan)
            number = str(max((int(n) for n in names), default=0) + 1)
            os.link(path, os.path.join(keep, number))
        if base is not None and mark != "-" and not os.path.exists(os.path.join(keep, mark + BASE)):
            tmp = os.path.join(keep, f"{mark}{BASE}.{os.getpid()}.tmp")
            with open(_private(tmp), "wb") as fh:
                fh.write(base)
            os.replace(tmp, os.path.join(keep, mark + BASE))
        os.chmod(path, st.st_mode & 0o7777 & ~0o002)  # as its replacement will be: never world-writable
        mtime, size = seen if seen is not None else (st.st_mtime_ns, st.st_size)
        index[number] = (mtime, size, now, os.path.abspath(new), mark)
        for name in sorted(index, key=int)[:-KEEP] + [n for n, v in index.items() if now - v[2] > KEEP_SECONDS]:
            index.pop(name, None)
            _unlink_kept(keep, name)
        marks = {v[4] for v in index.values()}
        for name in listed:  # bases no kept link needs any more
            if name.endswith(BASE) and name[: -len(BASE)] not in marks:
                _unlink_kept(keep, name)
        _write_index(keep, index)
    except OSError:
        pass  # another file system (a task folder elsewhere), no links: only this safety net is missing


def late_writes(keep: str, live: str) -> list[tuple[str, bytes, str]]:
    """The kept old files written to after orch replaced them ((link, content, the mark given when it was kept),
    oldest first), the live file ``live`` aside. Called under the task file's lock. The caller drops each link
    (``drop_kept``) once it has taken care of it, so that a crash in between reports it again. A kept file that
    orch did not replace (its write was killed) is not a late save: writes to it were the person's, to the live
    file; once the person has replaced it, its link goes."""
    try:
        now = os.stat(live)
        current = (now.st_dev, now.st_ino)
    except OSError:
        current = (-1, -1)
    found = []
    index = _read_index(keep)
    unkept = []
    for name, (mtime, size, _, new, mark) in sorted(index.items(), key=lambda kv: int(kv[0])):
        link = os.path.join(keep, name)
        try:
            st = os.stat(link)
        except OSError:
            continue
        if (st.st_dev, st.st_ino) == current:
            continue
        if _unreplaced(new):
            unkept.append((name, new))
        elif (st.st_mtime_ns, st.st_size) != (mtime, size):
            with open(link, "rb") as fh:
                found.append((link, fh.read(8 << 20), mark))
    if unkept:
        for name, new in unkept:
            index.pop(name)
            _unlink_kept(keep, name)
            try:
                os.unlink(new)
            except FileNotFoundError:
                pass
        try:
            _write_index(keep, index)
        except OSError:
            pass
    return found


def taken_up(keep: str, fd: int, st: os.stat_result) -> None:
    """The kept copy open as ``fd`` (``st``: its stat, taken before it was read again) was read again by the write
    that replaced it, and its text carried over: what it held then is not a late save any more."""
    index = _read_index(keep)
    for name, (_, _, at, new, mark) in index.items():
        try:
            link = os.stat(os.path.join(keep, name))
        except OSError:
            continue
        if (link.st_dev, link.st_ino) == (st.st_dev, st.st_ino):
            index[name] = (st.st_mtime_ns, st.st_size, at, new, mark)
            try:
                _write_index(keep, index)
            except OSError:
                pass
            return


def drop_kept(link: str) -> None:
    keep, name = os.path.split(link)
    _unlink_kept(keep, name)
    index = _read_index(keep)
    if index.pop(name, None) is not None:
        try:
            _write_index(keep, index)
        except OSError:
            pass


def prune_kept(keep: str) -> None:
    """Kept links past KEEP_SECONDS go; an empty folder too."""
    index = _read_index(keep)
    now = time.time()
    for name, (_, _, at, _, _) in list(index.items()):
        if now - at > KEEP_SECONDS:
            drop_kept(os.path.join(keep, name))
            index.pop(name)
    if not index:
        import shutil

        shutil.rmtree(keep, ignore_errors=True)


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
