"""The only module that asks the kernel about file changes: which folders orch's daemon watches.

On Linux, inotify through libc (no thread, no polling: the daemon sleeps in ``select`` on its descriptor). Elsewhere,
or when inotify is not available, a fallback compares the folders' listings (names, sizes, mtimes) each time it is
asked, which the daemon then does once a second.
"""

from __future__ import annotations

import ctypes
import os
import struct

# inotify(7) event bits
IN_MODIFY = 0x002
IN_ATTRIB = 0x004
IN_CLOSE_WRITE = 0x008
IN_MOVED_FROM = 0x040
IN_MOVED_TO = 0x080
IN_CREATE = 0x100
IN_DELETE = 0x200
IN_DELETE_SELF = 0x400
IN_MOVE_SELF = 0x800
IN_Q_OVERFLOW = 0x4000
IN_NONBLOCK = 0o4000
IN_CLOEXEC = 0o2000000
MASK = IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE | IN_DELETE_SELF | IN_MOVE_SELF | IN_ATTRIB
_HEADER = struct.Struct("iIII")


class Watcher:
    """Changes in a few folders (not recursive). ``fileno()`` is None for the polling fallback."""

    def __init__(self, folders: list[str]) -> None:
        self.folders = [os.path.abspath(f) for f in folders]
        self._fd: int | None = None
        self._wds: dict[int, str] = {}
        self._snapshot: dict[str, tuple] = {}
        libc = _libc()
        if libc is not None:
            fd = libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
            if fd >= 0:
                self._fd = fd
                self._libc = libc
                for folder in self.folders:
                    self._add(folder)
                return
        self._snapshot = {f: _listing(f) for f in self.folders}

    def _add(self, folder: str) -> None:
        wd = self._libc.inotify_add_watch(self._fd, os.fsencode(folder), MASK)
        if wd >= 0:
            self._wds[wd] = folder

    def fileno(self) -> int | None:
        return self._fd

    def changes(self) -> list[str]:
        """Paths changed since the last call (folder paths when a folder itself changed or events overflowed)."""
        if self._fd is None:
            return self._poll()
        out: list[str] = []
        while True:
            try:
                data = os.read(self._fd, 65536)
            except BlockingIOError:
                break
            if not data:
                break
            offset = 0
            while offset + _HEADER.size <= len(data):
                wd, mask, _cookie, length = _HEADER.unpack_from(data, offset)
                name = data[offset + _HEADER.size : offset + _HEADER.size + length].rstrip(b"\0")
                offset += _HEADER.size + length
                folder = self._wds.get(wd)
                if mask & IN_Q_OVERFLOW:
                    out.extend(self.folders)
                elif folder is not None:
                    out.append(os.path.join(folder, os.fsdecode(name)) if name else folder)
                if mask & (IN_DELETE_SELF | IN_MOVE_SELF) and folder is not None:
                    self._wds.pop(wd, None)
        self._rewatch()
        return out

    def _rewatch(self) -> None:
        """A watched folder deleted and made again (a person re-creating the task folder) is watched again."""
        watched = set(self._wds.values())
        for folder in self.folders:
            if folder not in watched and os.path.isdir(folder):
                self._add(folder)

    def _poll(self) -> list[str]:
        out = []
        for folder in self.folders:
            now = _listing(folder)
            before = self._snapshot.get(folder, ())
            if now != before:
                old = dict(before)
                new = dict(now)
                out += [os.path.join(folder, n) for n in set(old) | set(new) if old.get(n) != new.get(n)]
                self._snapshot[folder] = now
        return out

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _listing(folder: str) -> tuple:
    try:
        entries = []
        with os.scandir(folder) as it:
            for entry in it:
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                entries.append((entry.name, (st.st_size, st.st_mtime_ns)))
        return tuple(sorted(entries))
    except OSError:
        return ()


def _libc():
    if not hasattr(os, "uname") or os.uname().sysname != "Linux" or os.environ.get("ORCH_NO_INOTIFY"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)  # the process's own symbols, libc's among them
        libc.inotify_init1.argtypes = [ctypes.c_int]
        libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
        return libc
    except (OSError, AttributeError):
        return None
