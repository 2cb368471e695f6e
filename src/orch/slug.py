"""Task slugs: the names of task files, sessions and branches. Hot path: imports nothing."""

from orch.errors import OrchError

MAX_LEN = 64
_FIRST = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")
_REST = _FIRST | frozenset("-_.")


def problem(slug: str) -> str | None:
    """Why ``slug`` is not a valid slug, or None when it is."""
    if not slug:
        return "a task name cannot be empty"
    if len(slug) > MAX_LEN:
        return f"task name {slug[:20]!r}... is longer than {MAX_LEN} characters"
    if slug[0] not in _FIRST:
        return (
            f"task name {slug!r} must start with a lowercase letter or a digit "
            "(names starting with @, %, $ or - read as tmux ids or options)"
        )
    bad = sorted({c for c in slug if c not in _REST})
    if bad:
        shown = "".join(bad)
        return f"task name {slug!r} may only use lowercase letters, digits, '-', '_' and '.' (not {shown!r})"
    if slug.endswith(".md"):
        return f"task name {slug!r} should not end in .md (the file is <name>.md)"
    return None


def is_valid(slug: str) -> bool:
    return problem(slug) is None


def check(slug: str) -> str:
    why = problem(slug)
    if why:
        raise OrchError(why)
    return slug


def derive(text: str, taken: set[str] | frozenset[str] = frozenset(), limit: int = 40) -> str:
    """A slug for a task from its text: lowercase words joined by '-', unique among ``taken``, at most ``limit``
    (and never more than MAX_LEN) characters, suffix included."""
    limit = max(1, min(limit, MAX_LEN))
    words: list[str] = []
    current: list[str] = []
    for ch in text.lower():
        if ch in _FIRST:
            current.append(ch)
        elif current:
            words.append("".join(current))
            current = []
    if current:
        words.append("".join(current))
    base = "-".join(words) or "task"

    def cut(stem: str, room: int) -> str:
        if len(stem) <= room:
            return stem
        head = stem[:room]
        return (head[: head.rfind("-")] if "-" in head[1:] else head).strip("-") or head

    slug, n = cut(base, limit), 2
    while slug in taken:
        suffix = f"-{n}"
        slug = cut(base, limit - len(suffix)) + suffix if limit > len(suffix) else str(n)
        n += 1
    return slug
