"""Find the workspace (the repository `orch init` prepared) and name its state folders.

This module is on the hot path (`orch -`, `orch hook`): it imports nothing but `os`.
"""

import os

from orch.errors import OrchError

STATE_DIR = ".orch"
CONFIG_NAME = "config.toml"


class Workspace:
    """Paths of one workspace. ``root`` is the main working tree of the repository."""

    __slots__ = ("_id", "_secret", "root", "state")

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)
        self.state = os.path.join(self.root, STATE_DIR)
        self._id = ""
        self._secret = b""

    @property
    def id(self) -> str:
        """The workspace's identity: every session, window and registry row orch creates carries it, and nothing
        orch does touches what carries another (see ``identity``)."""
        if not self._id:
            self._id = identity(self)
        return self._id

    def secret(self) -> bytes:
        """The workspace's secret (``.orch/secret``, made on first use, readable by you alone and never shown to a
        worker: the sandbox hides ``.orch``): the key of the proofs orch puts on the windows it makes."""
        if not self._secret:
            path = self.path("secret")
            if not os.path.exists(path):  # made whole beside it, then linked in: a reader never sees it half-written
                tmp = f"{path}.{os.getpid()}.tmp"
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
                with os.fdopen(fd, "w", encoding="ascii") as fh:
                    fh.write(os.urandom(32).hex() + "\n")
                try:
                    os.link(tmp, path)
                except FileExistsError:
                    pass
                finally:
                    os.unlink(tmp)
            with open(path, encoding="ascii", errors="replace") as fh:
                secret = fh.read().strip().encode()
            if len(secret) < 32:
                raise OrchError(f"{path} is not orch's secret (too short): remove it and run the command again")
            self._secret = secret
        return self._secret

    def path(self, *parts: str) -> str:
        return os.path.join(self.state, *parts)

    @property
    def config_file(self) -> str:
        return self.path(CONFIG_NAME)

    @property
    def db_file(self) -> str:
        return self.path("orch.db")

    @property
    def inbox_new(self) -> str:
        return self.path("inbox", "new")

    @property
    def inbox_tmp(self) -> str:
        return self.path("inbox", "tmp")

    @property
    def locks(self) -> str:
        return self.path("locks")

    @property
    def logs(self) -> str:
        return self.path("logs")

    def __repr__(self) -> str:
        return f"Workspace({self.root!r})"


ID_FILE = "workspace"


def _read_id(state: str) -> dict[str, str]:
    """The fields of ``<state>/workspace`` (``id``, ``root``, ``folder``), or {}."""
    try:
        with open(os.path.join(state, ID_FILE), encoding="utf-8") as fh:
            fields = dict(line.rstrip("\n").split(" ", 1) for line in fh if " " in line)
    except (OSError, ValueError):
        return {}
    return fields if fields.get("id") else {}


def _folder(state: str) -> str:
    """The state folder's identity on disk ("<device>:<inode>"): the same whatever path reaches it, kept by a
    rename (a move on one file system), new for a copy."""
    st = os.stat(state)
    return f"{st.st_dev}:{st.st_ino}"


def _write_id(state: str, ident: str) -> None:
    path = os.path.join(state, ID_FILE)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(f"id {ident}\nroot {os.path.realpath(os.path.dirname(state))}\nfolder {_folder(state)}\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def identity(ws: Workspace) -> str:
    """The id in ``.orch/workspace``, made on first use. The file also records the state folder's device and inode:
    the workspace reached by another path (a symlink) or renamed to another place keeps its id, while a copy (a new
    folder) gets a new one, so that two workspaces never share an id and never take each other's workers. A
    workspace moved across file systems looks like a copy and starts with a new id (its worktrees do not follow it
    anyway)."""
    from orch.locks import hold

    here, root = _folder(ws.state), os.path.realpath(ws.root)
    found = _read_id(ws.state)
    if found.get("folder") == here and found.get("root") == root:
        return found["id"]
    with hold(os.path.join(ws.state, "locks", "workspace-id.lock"), wait=10):
        found = _read_id(ws.state)
        if found.get("folder") == here:
            if found.get("root") != root:
                _write_id(ws.state, found["id"])  # moved: the same folder in a new place
            return found["id"]
        ident = os.urandom(6).hex()  # new, or a copy of another workspace
        _write_id(ws.state, ident)
        return ident


def _is_workspace(folder: str) -> bool:
    return os.path.isfile(os.path.join(folder, STATE_DIR, CONFIG_NAME))


def _main_worktree_of(folder: str) -> str | None:
    """For a linked git worktree, the folder of the main working tree (read from `.git` files, no git run)."""
    dotgit = os.path.join(folder, ".git")
    if not os.path.isfile(dotgit):
        return None
    try:
        with open(dotgit, encoding="utf-8") as fh:
            line = fh.readline().strip()
    except OSError:
        return None
    if not line.startswith("gitdir:"):
        return None
    gitdir = os.path.normpath(os.path.join(folder, line[len("gitdir:") :].strip()))
    common = gitdir
    try:
        with open(os.path.join(gitdir, "commondir"), encoding="utf-8") as fh:
            common = os.path.normpath(os.path.join(gitdir, fh.readline().strip()))
    except OSError:
        pass
    if os.path.basename(common) != ".git":
        return None
    return os.path.dirname(common)


def find(start: str | None = None, explicit: str | None = None) -> Workspace:
    """The workspace for this command: ``explicit`` (-C), else ``$ORCH_WORKSPACE``, else walk up from ``start``."""
    given = explicit or os.environ.get("ORCH_WORKSPACE") or None
    if given:
        folder = os.path.abspath(os.path.expanduser(given))
        found = _search_up(folder)
        if found is None:
            raise OrchError(f"no orch workspace at {folder}: run `orch init` in that repository first")
        return found
    found = _search_up(os.path.abspath(start or os.getcwd()))
    if found is None:
        raise OrchError("not inside an orch workspace: run `orch init` in your git repository (or pass -C PATH)")
    return found


def _search_up(folder: str) -> Workspace | None:
    current = folder
    while True:
        if _is_workspace(current):
            return Workspace(current)
        main = _main_worktree_of(current)
        if main is not None and _is_workspace(main):
            return Workspace(main)
        parent = os.path.dirname(current)
        if parent == current:
            return None
        current = parent


def cached_tasks_dir(ws: Workspace) -> str | None:
    """The tasks folder as of the last config load, when config.toml has not changed since (hot path)."""
    cache = ws.path("tasks_dir")
    try:
        if os.stat(cache).st_mtime_ns < os.stat(ws.config_file).st_mtime_ns:
            return None
        with open(cache, encoding="utf-8") as fh:
            return fh.read() or None
    except OSError:
        return None


def daemon_pid(ws: Workspace) -> int | None:
    """The pid of the workspace's daemon (-1 while it starts), None when none runs. The daemon holds
    ``.orch/locks/daemon.lock`` for its whole life, so a stale pid file (kill -9, a reboot) never counts."""
    import fcntl

    try:
        fd = os.open(os.path.join(ws.locks, "daemon.lock"), os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        try:
            with open(ws.path("daemon.pid"), encoding="ascii") as fh:
                return int(fh.read().split()[0])
        except (OSError, ValueError, IndexError):
            return -1
    finally:
        os.close(fd)
    return None


def daemon_running(ws: Workspace) -> bool:
    return daemon_pid(ws) is not None
