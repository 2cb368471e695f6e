"""Task files: parse and render (pure text in, text out), plus the atomic write helper.

A task file is the person's text, byte for byte, followed by a block that orch owns::

    <person's text>
    <!-- orch: ... -->
    session: task-<slug>
    worktree: <path>
    branch: <branch>

    ## Summary
    state: coding
    ...

    ## Status
    - 2026-11-22T10:00:00Z queued

The block starts at the *last* marker line in the file, so the person's text may contain anything, even its own
``## Status`` heading or a copy of the marker. orch writes the block with the line ending the person's text uses.
This module is on the hot path of message application: it imports only the standard library, lazily where costly.
"""

from __future__ import annotations

import os
import time

from orch import faults, files, frontmatter
from orch.blockmarks import MARKER, STATUS, SUMMARY
from orch.errors import OrchError
from orch.record import dataclass, field
from orch.terminal import neutralise_line

__all__ = ["MARKER", "STATUS", "SUMMARY", "TaskDoc", "parse", "render", "update"]
META_KEYS = ("session", "worktree", "branch")


@dataclass
class TaskDoc:
    person: str
    meta: dict[str, str] = field(default_factory=dict)
    summary: list[str] = field(default_factory=list)
    status: list[str] = field(default_factory=list)
    eol: str = "\n"
    has_block: bool = False

    @property
    def state(self) -> str:
        """The task state recorded in the summary (``state: X`` on its first line); ``queued`` when none."""
        for line in self.summary:
            if line.startswith("state:"):
                return line[len("state:") :].strip() or "queued"
        return "queued"

    def summary_field(self, key: str) -> str | None:
        prefix = key + ":"
        for line in self.summary:
            if line.startswith(prefix):
                return line[len(prefix) :].strip()
        return None


def decode(data: bytes, name: str) -> str:
    """The text of a task file; a file that is not UTF-8 is refused, never rewritten."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise OrchError(
            f"{name} is not valid UTF-8 (byte {exc.start}); orch will not rewrite it: save it as UTF-8"
        ) from None


def _find_marker(text: str) -> tuple[int, int, str] | None:
    """(start of separator, end of marker line, eol) of the last well-formed marker line, or None."""
    pos = len(text)
    while True:
        idx = text.rfind(MARKER, 0, pos)
        if idx < 0:
            return None
        end = idx + len(MARKER)
        if text.startswith("\r\n", end):
            eol = "\r\n"
        elif text.startswith("\n", end):
            eol = "\n"
        elif end == len(text):
            eol = "\n"
        else:
            pos = idx
            continue
        sep_start = idx - len(eol)
        if sep_start >= 0 and text[sep_start:idx] == eol:
            return sep_start, min(end + len(eol), len(text)), eol
        pos = idx


def _lines(text: str) -> list[str]:
    return text.replace("\r\n", "\n").split("\n")


def parse(text: str) -> TaskDoc:
    found = _find_marker(text)
    if found is None:
        eol = "\r\n" if "\r\n" in text else "\n"
        return TaskDoc(person=text, eol=eol)
    sep_start, block_start, eol = found
    doc = TaskDoc(person=text[:sep_start], eol=eol, has_block=True)
    section = "meta"
    for line in _lines(text[block_start:]):
        stripped = line.rstrip()
        if stripped == SUMMARY:
            section = "summary"
            continue
        if stripped == STATUS:
            section = "status"
            continue
        if section == "meta":
            key, colon, value = line.partition(":")
            if colon and key.strip() and " " not in key.strip():
                doc.meta[key.strip()] = value.strip()
        elif section == "summary":
            doc.summary.append(line)
        elif line.startswith("- "):
            doc.status.append(line[2:])
    while doc.summary and not doc.summary[-1].strip():
        doc.summary.pop()
    while doc.summary and not doc.summary[0].strip():
        doc.summary.pop(0)
    return doc


def one_line(text: str) -> str:
    """Text made safe for a single status or summary line: one line, no terminal control characters (a worker's
    words reach your terminal through `orch status` and your editor)."""
    flat = neutralise_line(" ".join(part.strip() for part in text.replace("\r", "\n").split("\n") if part.strip()))
    if flat.startswith("#"):
        flat = "\\" + flat
    return flat


def render(doc: TaskDoc) -> str:
    eol = doc.eol
    out = [doc.person, eol, MARKER, eol]
    keys = [k for k in META_KEYS if k in doc.meta] + [k for k in doc.meta if k not in META_KEYS]
    for key in keys:
        out += [f"{key}: {one_line(doc.meta[key])}", eol]
    out += [eol, SUMMARY, eol]
    for line in doc.summary:
        safe = line if line.rstrip() not in (SUMMARY, STATUS, MARKER) else "\\" + line
        out += [safe, eol]
    out += [eol, STATUS, eol]
    for entry in doc.status:
        out += [f"- {entry}", eol]
    return "".join(out)


def status_line(stamp: str, text: str) -> str:
    return f"{stamp} {one_line(text)}"


# ---------------------------------------------------------------------------------------------------------------
# Front matter and the person's sections


def _front_block(person: str) -> str | None:
    """The YAML between a leading ``---`` line and the next ``---`` (or ``...``) line, or None."""
    lines = person.splitlines(keepends=True)
    if not lines or lines[0].rstrip("\r\n") != "---":
        return None
    for i in range(1, len(lines)):
        if lines[i].rstrip("\r\n") in ("---", "..."):
            return "".join(lines[1:i])
    return None


def front_matter(person: str, name: str = "task") -> dict:
    """The YAML front matter of the person's text (a ``---`` block at the very top), or {}."""
    block = _front_block(person)
    if block is None:
        return {}
    meta: object = frontmatter.parse(block)  # the common simple case, without importing yaml
    if meta is None:
        import yaml  # noqa: PLC0415 - costly, only needed off the hot path

        try:
            meta = yaml.safe_load(block)
        except yaml.YAMLError as exc:
            first = str(exc).splitlines()[0] if str(exc) else "invalid YAML"
            raise OrchError(f"{name}: front matter is not valid YAML ({first})") from None
    if meta is None:
        return {}
    if not isinstance(meta, dict):
        raise OrchError(f"{name}: front matter must be a mapping of keys to values (agent:, base:, depends_on:)")
    return dict(meta)


def body_without_front_matter(person: str) -> str:
    block = _front_block(person)
    if block is None:
        return person
    lines = person.splitlines(keepends=True)
    used = 1 + len(block.splitlines(keepends=True)) + 1
    return "".join(lines[used:])


def fenced_blocks(text: str, info: str) -> list[str]:
    """Contents of the fenced code blocks whose info string's first word is ``info``."""
    blocks: list[str] = []
    current: list[str] = []
    fence = ""
    keep = False
    for line in _lines(text):
        stripped = line.strip()
        if not fence:
            if stripped.startswith(("```", "~~~")):
                char = stripped[0]
                run = len(stripped) - len(stripped.lstrip(char))
                words = stripped[run:].split()
                fence, keep, current = char * run, bool(words) and words[0] == info, []
        elif stripped.startswith(fence) and set(stripped) == {fence[0]}:
            if keep:
                blocks.append("\n".join(current))
            fence = ""
        elif keep:
            current.append(line)
    if fence and keep:  # an unclosed fence runs to the end of the text
        blocks.append("\n".join(current))
    return blocks


# ---------------------------------------------------------------------------------------------------------------
# Files


def read(path: str) -> tuple[bytes, TaskDoc]:
    with open(path, "rb") as fh:
        data = fh.read()
    return data, parse(decode(data, os.path.basename(path)))


def person_mark(person: str) -> str:
    """A digest of the person's text (what a kept file held: see ``update`` and ``workflow.tasks.late_saves``)."""
    import hashlib

    return hashlib.sha256(person.encode("utf-8", "surrogateescape")).hexdigest()


def update(path: str, change, attempts: int = 12, keep: str | None = None) -> TaskDoc | None:
    """Apply ``change(doc) -> bool`` to the task file at ``path`` and write it when it returns True.

    Only orch's block is rewritten; the person's text is taken from the file as it is on disk. A person saving
    meanwhile never loses their text: the file is compared with what was read just before orch's new copy replaces
    it (the update is redone on their version if it changed), and an editor that writes in place, and so lands on
    the file orch has just replaced, is caught afterwards by reading that old file once more: their text is put
    back and the update redone on it. ``keep``: a folder where links to the replaced files are kept, for an
    editor that writes to one later (``files.late_writes``). Returns the document written, or None when nothing changed.
    """
    for attempt in range(attempts):
        fd = os.open(path, os.O_RDONLY)
        try:
            data = files.read_all(fd)
            seen = os.fstat(fd)  # (the file as read: a save after this is the person's, even if it lands before the keep)
            if not data.strip():  # emptied: most likely a save in progress (truncate, then write)
                if attempt < attempts - 1:
                    time.sleep(0.01 * (attempt + 1))
                    continue
                raise OrchError(f"{os.path.basename(path)} is empty (a save in progress?): orch writes it once it has "
                                "the person's text again")
            doc = parse(decode(data, os.path.basename(path)))
            before = doc.person
            if not change(doc):
                return None
            new = render(doc).encode("utf-8")
            if new == data:
                return None
            tmp = files.write_tmp(path, new)
            if files.read_all(fd) != data or not files.same_file(fd, path):
                os.unlink(tmp)
                continue
            if keep:  # (marked with the person's text it held: a late save to it is theirs only if that is current)
                files.keep_replaced(path, keep, tmp, person_mark(before), before.encode("utf-8", "surrogateescape"),
                                    seen=(seen.st_mtime_ns, seen.st_size))
            faults.point("file.written")
            files.replace(tmp, path)
            if files.read_all(fd) == data:
                return doc
            st = os.fstat(fd)  # a save landed on the replaced file: theirs first, then ours again
            files.atomic_write(path, files.settled(fd))
            if keep:
                files.taken_up(keep, fd, st)
        finally:
            os.close(fd)
    raise OrchError(f"{path} kept changing while orch tried to update it; try again")
