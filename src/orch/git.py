"""The only module that runs git (through its command line, always with an argument list).

orch's git never runs a hook or a file-system monitor: a worker (with the sandbox off) or a repository a worker
pointed at could have written them, and orch's own commands need neither. Its diffs never call an external
differ."""

from __future__ import annotations

import os
from collections.abc import Sequence

from orch import child
from orch.errors import OrchError
from orch.record import dataclass


class GitError(OrchError):
    pass


SAFE = ("-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false")


def run(
    cwd: str, *args: str, check: bool = True, input: bytes | None = None, env_extra: dict[str, str] | None = None
) -> child.Done:
    try:
        proc = child.run(_argv(cwd, args), input=input, env=_env(env_extra))
    except FileNotFoundError:
        raise OrchError(MISSING) from None
    return _checked(proc, args) if check else proc


MISSING = "git is not installed: install git >= 2.38 (e.g. `apt-get install git`)"


def _argv(cwd: str, args: tuple[str, ...]) -> list[str]:
    return ["git", *SAFE, "-C", cwd, *args]


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    return {**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C", **(extra or {})}


def _checked(proc: child.Done, args: tuple[str, ...]) -> child.Done:
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise GitError(f"git {args[0]}: {err[-1] if err else f'exit {proc.returncode}'}")
    return proc


MARKER_SIZE = 41  # conflict markers longer than any line a person writes by hand


def merge_text(ours: str, base: str, theirs: str) -> str | None:
    """A three-way merge of three texts (``git merge-file``, no repository needed): the text with both sides'
    changes to ``base``; where both added lines at the same place (nothing of ``base`` changed there), theirs then
    ours (the lines both begin with, once). None when they change the same lines of ``base`` differently."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="orch-merge-") as scratch:
        names = []
        for name, text in (("ours", ours), ("base", base), ("theirs", theirs)):
            names.append(os.path.join(scratch, name))
            with open(names[-1], "w", encoding="utf-8", errors="surrogateescape", newline="") as fh:
                fh.write(text)
        proc = run(scratch, "merge-file", "-p", "-q", "--diff3", f"--marker-size={MARKER_SIZE}", *names, check=False)
    text = proc.stdout.decode("utf-8", "surrogateescape")
    if proc.returncode == 0:
        return text
    if not 0 < proc.returncode < 128:
        return None
    return _insertions_only(text)


def _insertions_only(text: str) -> str | None:
    """A diff3 merge's conflicts resolved where each is two insertions at one place (theirs, then ours); None when
    one of them changes lines of the base."""
    out: list[str] = []
    part = ""
    ours: list[str] = []
    base: list[str] = []
    theirs: list[str] = []
    for line in text.splitlines(keepends=True):
        mark = line[:MARKER_SIZE]
        if mark == "<" * MARKER_SIZE and not part:
            part, ours, base, theirs = "ours", [], [], []
        elif mark == "|" * MARKER_SIZE and part == "ours":
            part = "base"
        elif mark == "=" * MARKER_SIZE and part == "base":
            part = "theirs"
        elif mark == ">" * MARKER_SIZE and part == "theirs":
            if base:
                return None
            same = 0  # (lines both added, once)
            while same < min(len(theirs), len(ours)) and theirs[same] == ours[same]:
                same += 1
            out += theirs + ours[same:]
            part = ""
        elif part:
            {"ours": ours, "base": base, "theirs": theirs}[part].append(line)
        else:
            out.append(line)
    return None if part else "".join(out)


def out(cwd: str, *args: str) -> str:
    return run(cwd, *args).stdout.decode("utf-8", "replace").strip()


def toplevel(path: str) -> str | None:
    """The main working tree of the repository containing ``path`` (also from a linked worktree), or None."""
    proc = run(path, "rev-parse", "--path-format=absolute", "--git-common-dir", check=False)
    if proc.returncode != 0:
        return None
    common = proc.stdout.decode("utf-8", "replace").strip()
    if os.path.basename(common) == ".git":
        return os.path.dirname(common)
    proc = run(path, "rev-parse", "--show-toplevel", check=False)
    return proc.stdout.decode().strip() if proc.returncode == 0 else None


def git_dir(repo: str) -> str:
    return out(repo, "rev-parse", "--path-format=absolute", "--git-common-dir")


def git_dirs(worktree: str) -> list[str]:
    """The repository's common git directory and the worktree's own one (the same folder for a main worktree)."""
    common = out(worktree, "rev-parse", "--path-format=absolute", "--git-common-dir")
    own = out(worktree, "rev-parse", "--path-format=absolute", "--git-dir")
    return [common] if own == common else [common, own]


def current_branch(repo: str) -> str | None:
    proc = run(repo, "symbolic-ref", "--quiet", "--short", "HEAD", check=False)
    name = proc.stdout.decode().strip()
    return name if proc.returncode == 0 and name else None


def rev(repo: str, ref: str) -> str | None:
    proc = run(repo, "rev-parse", "--verify", "--quiet", ref + "^{commit}", check=False)
    return proc.stdout.decode().strip() if proc.returncode == 0 else None


def is_ancestor(repo: str, older: str, newer: str) -> bool:
    """Whether ``older`` is ``newer`` or one of its ancestors."""
    return run(repo, "merge-base", "--is-ancestor", older, newer, check=False).returncode == 0


def branch_exists(repo: str, branch: str) -> bool:
    return run(repo, "show-ref", "--verify", "--quiet", f"refs/heads/{branch}", check=False).returncode == 0


def check_branch_name(repo: str, branch: str) -> bool:
    return run(repo, "check-ref-format", "--branch", branch, check=False).returncode == 0


@dataclass(frozen=True)
class Worktree:
    path: str
    head: str
    branch: str | None
    bare: bool = False
    detached: bool = False
    prunable: bool = False


def worktrees(repo: str) -> list[Worktree]:
    """``git worktree list --porcelain``, parsed."""
    text = run(repo, "worktree", "list", "--porcelain").stdout.decode("utf-8", "replace")
    found: list[Worktree] = []
    for block in text.strip().split("\n\n"):
        info: dict[str, str] = {}
        for line in block.splitlines():
            key, _, value = line.partition(" ")
            info[key] = value
        if "worktree" not in info:
            continue
        branch = info.get("branch")
        if branch and branch.startswith("refs/heads/"):
            branch = branch[len("refs/heads/") :]
        found.append(
            Worktree(
                path=info["worktree"],
                head=info.get("HEAD", ""),
                branch=branch,
                bare="bare" in info,
                detached="detached" in info,
                prunable="prunable" in info,
            )
        )
    return found


REUSED, ATTACHED, CREATED = "reused worktree", "attached worktree to existing branch", "created worktree and branch"


def add_worktree(repo: str, path: str, branch: str, base: str) -> str:
    """Create (or reuse) the worktree at ``path`` on ``branch``; returns what was done, for the log."""
    existing = {os.path.realpath(w.path): w for w in worktrees(repo)}
    here = existing.get(os.path.realpath(path))
    if here is not None and not here.prunable:
        if here.branch != branch:
            raise GitError(f"{path} is already a worktree on {here.branch or 'a detached HEAD'}, not {branch}")
        return REUSED
    if here is not None and here.prunable:
        prune_worktrees(repo)
    for w in existing.values():
        if w.branch == branch and os.path.realpath(w.path) != os.path.realpath(path) and not w.prunable:
            raise GitError(f"branch {branch} is already checked out at {w.path}")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if os.path.exists(path) and os.listdir(path):
        raise GitError(f"{path} exists and is not a worktree of this repository; move it away")
    if branch_exists(repo, branch):
        run(repo, "worktree", "add", "--quiet", path, branch)
        return ATTACHED
    if rev(repo, base) is None:
        raise GitError(f"base {base!r} is not a branch or commit of this repository")
    run(repo, "worktree", "add", "--quiet", "-b", branch, path, base)
    return CREATED


def remove_worktree(repo: str, path: str, force: bool = False) -> None:
    args = ["worktree", "remove", path]
    if force:
        args.insert(2, "--force")
    run(repo, *args)


def prune_worktrees(repo: str) -> None:
    run(repo, "worktree", "prune")


def delete_branch(repo: str, branch: str) -> None:
    run(repo, "branch", "-D", branch)


def delete_merged_branch(repo: str, branch: str) -> None:
    """``git branch -d``: git itself refuses a branch that is not merged."""
    run(repo, "branch", "-d", "--", branch)


def merged_branches(repo: str, base: str, prefix: str) -> list[str]:
    """Local branches named ``<prefix>...`` whose commits are all in ``base``."""
    text = run(repo, "branch", "--merged", base, "--format=%(refname:short)", "--list", prefix + "*").stdout
    return [b for b in text.decode("utf-8", "replace").splitlines() if b.strip() and b != base]


def _heads_args(prefix: str) -> tuple[str, ...]:
    return ("for-each-ref", "--format=%(refname:short)%00%(objectname)", f"refs/heads/{prefix}*")


def start_branch_heads(repo: str, prefix: str) -> child.Running | None:
    """The call ``branch_heads`` makes, started now (the caller works meanwhile); None: git is missing."""
    try:
        return child.Running(_argv(repo, _heads_args(prefix)), env=_env())
    except FileNotFoundError:
        return None


def branch_heads(repo: str, prefix: str, started: child.Running | None = None) -> dict[str, str]:
    """Every local branch named ``<prefix>...`` and the commit it points to, in one git process (``started``: that
    process, begun by ``start_branch_heads``)."""
    if started is not None:
        text = _checked(started.finish(), _heads_args(prefix)).stdout
    else:
        text = run(repo, *_heads_args(prefix)).stdout
    heads = {}
    for line in text.decode("utf-8", "replace").splitlines():
        name, _, sha = line.partition("\0")
        if sha:
            heads[name] = sha
    return heads


def status_porcelain(path: str) -> list[str]:
    """Uncommitted changes (tracked and untracked) in a working tree."""
    # (no rename detection: it would read blobs, and a sandboxed coder's staged ones are in its own object store)
    text = run(path, "status", "--porcelain", "--no-renames", "--untracked-files=all").stdout.decode("utf-8", "replace")
    return [line for line in text.splitlines() if line.strip()]


def commits_ahead(path: str, base: str, head: str = "HEAD") -> list[tuple[str, str]]:
    text = run(path, "log", "--format=%H%x1f%s", f"{base}..{head}").stdout.decode("utf-8", "replace")
    pairs = (line.split("\x1f", 1) for line in text.splitlines() if "\x1f" in line)
    return [(sha, subject) for sha, subject in pairs]


def init_repo(path: str, files: Sequence[tuple[str, str]] = (), branch: str = "main") -> None:
    """A new repository with one commit (used by the demo and the tests)."""
    os.makedirs(path, exist_ok=True)
    run(path, "init", "--quiet", "-b", branch)
    run(path, "config", "user.email", "orch@example.invalid")
    run(path, "config", "user.name", "orch")
    for name, text in files or (("README.md", "demo\n"),):
        full = os.path.join(path, name)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "w", encoding="utf-8") as fh:
            fh.write(text)
    run(path, "add", "-A")
    run(path, "commit", "--quiet", "-m", "initial commit")


def add_exclude(repo: str, patterns: Sequence[str], why: str = "orch init", common_dir: str | None = None) -> list[str]:
    """Add patterns to the repository's ``info/exclude`` (once each, shared by all its worktrees); returns those
    added. ``common_dir``: the repository's git directory when the caller knows it already."""
    from orch.locks import hold

    exclude = os.path.join(common_dir or git_dir(repo), "info", "exclude")
    os.makedirs(os.path.dirname(exclude), exist_ok=True)
    with hold(exclude + ".orch-lock", wait=10):
        try:
            with open(exclude, encoding="utf-8") as fh:
                text = fh.read()
        except FileNotFoundError:
            text = ""
        have = {line.strip() for line in text.splitlines()}
        added = [p for p in patterns if p not in have]
        if added:
            with open(exclude, "a", encoding="utf-8") as fh:
                if text and not text.endswith("\n"):
                    fh.write("\n")
                fh.write(f"# added by {why}\n")
                for p in added:
                    fh.write(p + "\n")
    return added


def head(path: str) -> str | None:
    return rev(path, "HEAD")


def merge_base(repo: str, a: str, b: str) -> str | None:
    proc = run(repo, "merge-base", a, b, check=False)
    return proc.stdout.decode().strip() if proc.returncode == 0 else None


def tree_hash(path: str) -> str:
    """A hash of the whole working tree (tracked and untracked files, .gitignore respected), computed in a
    temporary index so that the worktree's own index is left alone."""
    import shutil
    import tempfile

    real_index = out(path, "rev-parse", "--path-format=absolute", "--git-path", "index")
    with tempfile.TemporaryDirectory(prefix="orch-index-") as tmp:
        index = os.path.join(tmp, "index")
        if os.path.exists(real_index):
            shutil.copyfile(real_index, index)
        run(path, "add", "-A", ".", env_extra={"GIT_INDEX_FILE": index})
        return run(path, "write-tree", "--missing-ok", env_extra={"GIT_INDEX_FILE": index}).stdout.decode().strip()


# config keys through which git runs a program or takes its settings from elsewhere: what a reviewer must not change
RUNS = ("core.hookspath", "core.fsmonitor", "core.sshcommand", "core.pager", "core.editor", "core.askpass",
        "core.gitproxy", "filter.", "diff.", "merge.", "alias.", "include.", "includeif.", "credential.", "gpg.",
        "sequence.editor", "uploadpack.", "protocol.")


def fingerprint(path: str, skip: tuple[str, ...] = ()) -> str:
    """What a read-only worker without the sandbox must leave as it found it: the working tree (``tree_hash``), the
    files git ignores there (each one's name, type and size) and what git would run (the config keys that name a
    program, of the repository and the worktree; attributes; hooks, by content). Two equal fingerprints: nothing
    of it changed. (Your own edits elsewhere in the config, a branch's upstream, do not count; nor the ignored
    files whose first path part matches ``skip``: the agents' own caches.)"""
    import fnmatch
    import hashlib

    digest = hashlib.sha256()
    ignored = run(path, "ls-files", "-z", "--others", "--ignored", "--exclude-standard").stdout
    for name in sorted(n for n in ignored.split(b"\0") if n):
        first = name.split(b"/", 1)[0].decode("utf-8", "replace")
        if any(fnmatch.fnmatchcase(first, pattern) for pattern in skip):
            continue
        try:
            st = os.lstat(os.path.join(path.encode(), name))
            digest.update(b"%s\0%o %d\n" % (name, st.st_mode, st.st_size))
        except OSError:
            digest.update(name + b"\0gone\n")
    dirs = git_dirs(path)
    for d in dirs:
        for conf in ("config", "config.worktree"):
            listed = run(path, "config", "--file", os.path.join(d, conf), "--list", "--includes", check=False).stdout
            keys = sorted(line for line in listed.splitlines() if line.lower().startswith(tuple(k.encode() for k in RUNS)))
            digest.update(f"{d}/{conf}\0".encode() + b"\n".join(keys))
    hooks = os.path.join(dirs[0], "hooks")  # (a hooksPath elsewhere is in the config, which is watched)
    watched = [os.path.join(dirs[0], "info", "attributes")]
    try:
        watched += sorted(os.path.join(hooks, f) for f in os.listdir(hooks))
    except OSError:
        pass
    for file in watched:
        try:
            with open(file, "rb") as fh:
                digest.update(file.encode() + b"\0" + hashlib.sha256(fh.read()).digest())
        except OSError:
            digest.update(file.encode() + b"\0none")
    return f"{tree_hash(path)}:{digest.hexdigest()[:24]}"


def unchanged_since(path: str, before: str, skip: tuple[str, ...] = ()) -> str:
    """The worktree's state now, measured as ``before`` was: a fingerprint (``tree:digest``) or a tree hash."""
    return fingerprint(path, skip) if ":" in before else tree_hash(path)


def diffstat(repo: str, a: str, b: str) -> str:
    return out(repo, "diff", "--no-ext-diff", "--no-textconv", "--stat", f"{a}..{b}")


def diff(repo: str, a: str, b: str, stat: bool = False, color: bool = False) -> str:
    """``git diff a..b`` (with ``--stat``: the files and counts only)."""
    args = ["diff", "--no-ext-diff", "--no-textconv", f"--color={'always' if color else 'never'}"]
    return run(repo, *args, *(["--stat"] if stat else []), f"{a}..{b}").stdout.decode("utf-8", "replace")


def range_diff(repo: str, base: str, old: str, new: str, color: bool = False) -> str:
    """``git range-diff base..old base..new``: how the commits changed between two versions of a branch."""
    args = ["range-diff", "--no-ext-diff", f"--color={'always' if color else 'never'}"]
    return run(repo, *args, f"{base}..{old}", f"{base}..{new}").stdout.decode("utf-8", "replace")


def changed_files(repo: str, a: str, b: str) -> list[str]:
    return [line for line in out(repo, "diff", "--no-ext-diff", "--name-only", f"{a}..{b}").splitlines() if line]


def _merge_args(base: str, branch: str) -> tuple[str, ...]:
    return ("merge-tree", "--write-tree", "--name-only", "--no-messages", base, branch)


def start_conflicts(repo: str, base: str, branch: str) -> child.Running:
    """The merge ``conflicts`` makes, started now (several run side by side); ``conflicts(..., started=)`` ends it."""
    return child.Running(_argv(repo, _merge_args(base, branch)), env=_env())


def conflicts(repo: str, base: str, branch: str, started: child.Running | None = None) -> tuple[bool, list[str]]:
    """Would merging ``branch`` into ``base`` conflict? (``git merge-tree --write-tree``; nothing is written to
    any branch.) Returns (clean, conflicting paths)."""
    proc = started.finish() if started is not None else run(repo, *_merge_args(base, branch), check=False)
    if proc.returncode == 0:
        return True, []
    if proc.returncode == 1:
        lines = proc.stdout.decode("utf-8", "replace").splitlines()[1:]
        return False, [line for line in lines if line.strip()]
    err = proc.stderr.decode("utf-8", "replace").strip()
    raise GitError(f"git merge-tree: {err or f'exit {proc.returncode}'}")


def remote_url(repo: str, remote: str) -> str | None:
    proc = run(repo, "remote", "get-url", "--", remote, check=False)
    return proc.stdout.decode("utf-8", "replace").strip() if proc.returncode == 0 else None


def push(repo: str, remote: str, sha: str, branch: str, expect: str | None = None) -> None:
    """Put ``sha`` on ``remote``'s ``branch``: a fast-forward, or (``expect``: the sha orch pushed there before) a
    replacement only while the remote still holds exactly that (``--force-with-lease``): never another's work."""
    lease = [f"--force-with-lease=refs/heads/{branch}:{expect}"] if expect else []
    run(repo, "push", "--quiet", "--no-verify", *lease, "--", remote, f"{sha}:refs/heads/{branch}")


def branch_tip(repo: str, branch: str) -> str | None:
    """A local branch's commit, read from the repository's files when they are plain (a loose ref, or the packed
    refs): no process for a pass that only wants to know whether it moved; else ``git rev-parse``."""
    gitdir = os.path.join(repo, ".git")
    if os.path.isdir(gitdir) and ".." not in branch.split("/"):
        try:
            with open(os.path.join(gitdir, "refs", "heads", branch), encoding="ascii") as fh:
                sha = fh.read().strip()
            if len(sha) == 40:
                return sha
        except (OSError, ValueError):
            try:
                with open(os.path.join(gitdir, "packed-refs"), encoding="utf-8") as fh:
                    for line in fh:
                        if line.endswith(f" refs/heads/{branch}\n"):
                            return line.split(" ", 1)[0]
            except OSError:
                pass
    return rev(repo, f"refs/heads/{branch}") or rev(repo, branch)


def head_branch(repo: str) -> str | None:
    """The branch checked out in the repository's main worktree (its HEAD file), else ``current_branch``."""
    try:
        with open(os.path.join(repo, ".git", "HEAD"), encoding="utf-8") as fh:
            text = fh.read().strip()
        if text.startswith("ref: refs/heads/"):
            return text[len("ref: refs/heads/"):]
        if len(text) == 40:
            return None  # detached
    except OSError:
        pass
    return current_branch(repo)
