"""A coder's view of its task branch (``.orch/sandbox/<task>``), carried across to the repository and back.

Inside a coder's sandbox, the folder of orch's branches is the view's ``heads`` folder, which holds only the task's
own branch; ``synced`` is the commit both sides had at the last carry, ``branch`` the branch's name. Its object
store is the view's ``objects`` folder: the coder's new objects land there, the repository's are read through
``base`` (its ``info/alternates``), and none of the repository's can be changed or deleted; a carry takes the new
objects a commit needs into the repository, each one checked (``git unpack-objects --strict``). The coder's
host carries each commit at once (it watches the folder); a pass carries whatever is left. Standard library and
orch.git only: the host imports it.
"""

from __future__ import annotations

import os

from orch import git
from orch.files import atomic_write

HEX = frozenset("0123456789abcdef")


def _read(path: str) -> str:
    try:
        with open(path, encoding="ascii", errors="replace") as fh:
            text = fh.read(200).strip()
    except OSError:
        return ""
    return text if len(text) in (40, 64) and set(text) <= HEX else ""


def _write(path: str, sha: str) -> None:
    atomic_write(path, (sha + "\n").encode(), mode=0o644)


def prepare_objects(root: str, view: str) -> None:
    """The coder's object store: empty, reading the repository's through ``base`` (outside the sandbox a link to
    the repository's object store; inside, the store itself, mounted read-only at that path)."""
    objects = git.out(root, "rev-parse", "--path-format=absolute", "--git-path", "objects")
    base = os.path.join(view, "base")
    if not os.path.islink(base) or os.readlink(base) != objects:
        tmp = base + ".new"
        if os.path.lexists(tmp):
            os.unlink(tmp)
        os.symlink(objects, tmp)
        os.replace(tmp, base)
    alternates = os.path.join(view, "objects", "info", "alternates")
    if _text(alternates) != base + "\n":
        atomic_write(alternates, (base + "\n").encode(), mode=0o444)


def _text(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read(4096)
    except OSError:
        return ""


def take_objects(root: str, view: str, sha: str) -> None:
    """The objects ``sha`` needs that the repository lacks, from the coder's store into the repository's, each one
    checked (its content hashed again, every object it names present). Raises GitError."""
    objects = os.path.join(view, "objects")
    if _text(os.path.join(objects, "info", "alternates")) != os.path.join(view, "base") + "\n":
        raise git.GitError("the coder's object store was changed (its info/alternates)")
    for folder, dirs, names in os.walk(objects):
        for name in (*dirs, *names):
            if os.path.islink(os.path.join(folder, name)):
                raise git.GitError(f"the coder's object store holds a link ({os.path.join(folder, name)})")
    own = {"GIT_OBJECT_DIRECTORY": objects}
    needed = git.run(root, "rev-list", "--objects", sha, "--not", "--all", env_extra=own).stdout
    if not needed.strip():
        return
    pack = git.run(root, "pack-objects", "--stdout", "-q", input=needed, env_extra=own).stdout
    git.run(root, "unpack-objects", "-q", "--strict", input=pack)


def branch_of(view: str) -> str:
    """The task's branch, as its view records it ("" when the view is gone)."""
    try:
        with open(os.path.join(view, "branch"), encoding="utf-8") as fh:
            return fh.read().strip()
    except OSError:
        return ""


def leaf(branch: str) -> str:
    """The branch's file name in the folder of orch's branches (``orch/x`` -> ``x``)."""
    return branch.rsplit("/", 1)[-1]


def settled(view: str, heads: dict[str, str]) -> bool:
    """Nothing to carry: the coder's view, the last sync and the real branch (``heads``: branch -> commit, read for
    all tasks at once) all say the same commit. Reads small files, runs nothing."""
    branch = branch_of(view)
    if not branch:
        return True
    inner = _read(os.path.join(view, "heads", leaf(branch)))
    return bool(inner) and inner == _read(os.path.join(view, "synced")) == heads.get(branch)


def carry(root: str, view: str) -> tuple[str, str]:
    """Carry a task's branch across between its coder's view and the repository: (what moved, what went wrong).
    The coder's commit wins over a move outside made since the last sync (both are said). Under the view's lock:
    the pass and the coder's host (which carries each commit at once) may both be at it."""
    import fcntl

    branch = branch_of(view)
    try:
        lock = os.open(os.path.join(view, "lock"), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    except OSError:
        return "", ""
    if not branch:
        os.close(lock)
        return "", ""
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _carry(root, view, branch)
    finally:
        os.close(lock)


def _carry(root: str, view: str, branch: str) -> tuple[str, str]:
    leaf_file = os.path.join(view, "heads", leaf(branch))
    synced_file = os.path.join(view, "synced")
    inner, synced = _read(leaf_file), _read(synced_file)
    real = git.rev(root, f"refs/heads/{branch}") or ""
    if inner and inner != synced and inner != real:  # the coder committed (or moved its branch)
        try:
            if not git.rev(root, inner):
                take_objects(root, view, inner)
        except git.GitError as exc:
            return "", f"the coder's commit {inner[:12]} could not be taken in: {exc}"
        if not git.rev(root, inner):
            return "", f"the coder's branch points at {inner[:12]}, which is not a commit: not taken"
        try:
            git.run(root, "update-ref", "-m", "orch: the coder's commits, from its sandbox", f"refs/heads/{branch}",
                    inner, real or "0" * len(inner))
        except git.GitError as exc:
            return "", f"could not move {branch} to the coder's {inner[:12]}: {exc}"
        _write(synced_file, inner)
        if real and real != synced:
            return f"{branch} -> {inner[:12]}", (f"{branch} had moved to {real[:12]} outside the sandbox; the "
                                                 f"coder's {inner[:12]} replaces it")
        return f"{branch} -> {inner[:12]}", ""
    if real and real != inner:  # moved outside (by you, or orch), or a new view
        _write(leaf_file, real)
        _write(synced_file, real)
        return f"view of {branch} -> {real[:12]}", ""
    if inner and inner != synced:
        _write(synced_file, inner)
    return "", ""
