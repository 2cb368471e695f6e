"""The inbox's front door: one file per message in ``.orch/inbox/new`` (maildir style).

Writing a message is an exclusive create in ``inbox/tmp``, an fsync and a rename into ``inbox/new``: no lock, no
database, any number of writers at once, and a kill at any moment leaves either no message or a whole one. The
applier (workflow/inbox.py) imports these files into the database by their unique id and only then deletes them, so
a message is never lost and never applied twice. Hot path: imports only ``os`` and ``time`` (a record is a few ``key=value`` lines with ``\\``, newline and CR
escaped; no json, which would pull in ``re``).
"""

import os
import time

from orch.workspace import Workspace

SUFFIX = ".msg"
HEADER = "orch-message 1\n"


def encode(record: dict) -> bytes:
    lines = [HEADER]
    for key, value in record.items():
        text = str(value).replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")
        lines.append(f"{key}={text}\n")
    return "".join(lines).encode("utf-8", "surrogateescape")


def _unescape(text: str) -> str:
    out, i = [], 0
    while True:
        j = text.find("\\", i)
        if j < 0 or j + 1 >= len(text):
            out.append(text[i:])
            return "".join(out)
        out.append(text[i:j])
        out.append({"n": "\n", "r": "\r"}.get(text[j + 1], text[j + 1]))
        i = j + 2


def decode(data: bytes) -> dict | None:
    text = data.decode("utf-8", "surrogateescape")
    if not text.startswith(HEADER):
        return None
    record: dict = {}
    for line in text[len(HEADER) :].split("\n"):
        if not line:
            continue
        key, eq, value = line.partition("=")
        if not eq:
            return None
        record[key] = _unescape(value)
    try:
        at = float(record.get("at", ""))
    except ValueError:
        return None
    if not 0 < at < 1e11:  # also refuses nan and inf
        return None
    record["at"] = at
    return record if record.get("uid") else None


def arrival(ws: Workspace) -> int:
    """The next number of the workspace's arrival sequence: one byte appended to ``inbox/seq``, and the file's end
    after it. Appends are atomic, so every writer gets its own number, in the order the writes happened, whatever
    the clock does (a message's time stamp is its sender's clock; its place in the order is this)."""
    return _next(os.path.join(ws.state, "inbox", "seq"))


def _next(path: str) -> int:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    except FileNotFoundError:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        os.write(fd, b".")
        return os.lseek(fd, 0, os.SEEK_CUR)
    finally:
        os.close(fd)


def new_uid(ws: Workspace) -> str:
    """A message's id: its place in the arrival order, then what makes it unique."""
    return f"{arrival(ws):012d}-{os.getpid()}-{os.urandom(4).hex()}"


def write(ws: Workspace, record: dict) -> str:
    """Durably store one message record in the workspace's inbox; returns its uid."""
    uid = record.setdefault("uid", new_uid(ws))
    return _store(ws.inbox_tmp, ws.inbox_new, uid, record)


def spool_write(folder: str, record: dict) -> str:
    """Durably store one record in a worker's own spool (``folder``, the only place a sandboxed worker can write
    to orch); its host hands it on to the inbox (``forward``). Returns its uid."""
    uid = record.setdefault("uid", f"{_next(os.path.join(folder, 'seq')):012d}-{os.getpid()}-{os.urandom(4).hex()}")
    return _store(os.path.join(folder, "tmp"), os.path.join(folder, "new"), uid, record)


def _store(tmp_dir: str, new_dir: str, uid: str, record: dict) -> str:
    record.setdefault("at", time.time())
    data = encode(record)
    tmp = os.path.join(tmp_dir, uid + SUFFIX)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileNotFoundError:
        os.makedirs(tmp_dir, mode=0o700, exist_ok=True)
        os.makedirs(new_dir, mode=0o700, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(tmp)  # never leave half a message behind
        raise
    os.close(fd)
    os.rename(tmp, os.path.join(new_dir, uid + SUFFIX))
    return uid


def forward(ws: Workspace, folder: str, worker: str) -> int:
    """Hand the records of a worker's spool (``folder``) on to the inbox, in their order, each stamped with the
    worker it came from (``via``): what the worker wrote in the record about who it is does not count. Each record
    is first claimed with its place in the workspace's arrival order (renamed into the spool's ``cur``), so that a
    crash before it is handed on gives it the same uid again and the database keeps one. What is not a record is
    moved into the inbox under a name the applier sets aside. Returns how many were handed on."""
    key = worker.replace(":", "~")
    cur, new = os.path.join(folder, "cur"), os.path.join(folder, "new")
    moved = 0
    for name in _names(cur):  # claimed by a host that died before handing them on
        moved += _hand_on(ws, os.path.join(cur, name), key, worker)
    for name in _names(new):
        claimed = os.path.join(cur, f"{arrival(ws):012d}-{name}")
        try:
            os.rename(os.path.join(new, name), claimed)
        except FileNotFoundError:
            os.makedirs(cur, mode=0o700, exist_ok=True)
            os.rename(os.path.join(new, name), claimed)
        moved += _hand_on(ws, claimed, key, worker)
    return moved


def _names(folder: str) -> list[str]:
    try:
        return sorted(os.listdir(folder))
    except FileNotFoundError:
        return []


def _hand_on(ws: Workspace, path: str, key: str, worker: str) -> int:
    place, _, rest = os.path.basename(path).partition("-")
    record, _ = read(path)
    if record is None or not place.isdigit():
        os.makedirs(ws.inbox_new, mode=0o700, exist_ok=True)
        os.replace(path, os.path.join(ws.inbox_new, f"{place}-w-{key}-{rest}.bad"))
        return 0
    record.pop("token", None)
    if record.get("status") != "refused":  # a worker may refuse its own message, and say nothing else of its fate
        record.pop("status", None)
        record.pop("note", None)
    record["via"] = worker
    own = "".join(c if c.isalnum() or c == "-" else "_" for c in str(record["uid"]))[:80]
    record["uid"] = uid = f"{place}-w-{key}-{own}"
    try:
        os.unlink(os.path.join(ws.inbox_tmp, uid + SUFFIX))  # left by a host killed while writing it
    except FileNotFoundError:
        pass
    _store(ws.inbox_tmp, ws.inbox_new, uid, record)
    os.unlink(path)
    return 1


MAX_RECORD = 16 << 20  # bytes of a spooled record (a message is at most MAX_TEXT; a hook payload 1 MiB)
MAX_TEXT = 8 << 20


def pending(ws: Workspace) -> list[str]:
    """Paths of everything in the spool, in arrival order (orch's own files sort by their sequence number);
    anything orch did not write there is among them, for the applier to set aside."""
    try:
        names = os.listdir(ws.inbox_new)
    except FileNotFoundError:
        return []
    return [os.path.join(ws.inbox_new, n) for n in sorted(names)]


def read(path: str) -> tuple[dict | None, str]:
    """A spooled record, or (None, why it is not one): a name orch does not give, anything but a regular file
    (opened without following links and without blocking, so a fifo or a device never hangs the applier), a file
    larger than MAX_RECORD, or text that is not a record. The caller sets those aside."""
    import stat

    if not os.path.basename(path).endswith(SUFFIX):
        return None, "not a message file (its name)"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        return None, f"cannot be opened ({exc.strerror or exc})"
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None, "not a regular file"
        if st.st_size > MAX_RECORD:
            return None, f"{st.st_size} bytes, more than a message can be"
        chunks, size = [], 0
        while size <= MAX_RECORD:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > MAX_RECORD:
            return None, "it grew beyond what a message can be"
    except OSError as exc:
        return None, f"cannot be read ({exc.strerror or exc})"
    finally:
        os.close(fd)
    record = decode(b"".join(chunks))
    return (record, "") if record is not None else (None, "not a message record")


def stale_tmp(ws: Workspace, older_than: float = 600.0) -> list[str]:
    """Half-written messages whose writer died before handing them over (it never reported success)."""
    try:
        names = os.listdir(ws.inbox_tmp)
    except FileNotFoundError:
        return []
    old = []
    for name in names:
        path = os.path.join(ws.inbox_tmp, name)
        try:
            if time.time() - os.lstat(path).st_mtime > older_than:
                old.append(path)
        except OSError:
            continue
    return old
