"""Reviewer verdicts and findings: parsing, pure. Hot path safe (no imports beyond the standard basics).

A finding is one line ``<severity>: [path[:line]] <text>`` with severity blocker, major, minor or note. The path is
recognised when the first word after the colon looks like a file (contains '/' or '.', optionally ``:<line>``), or
is written in brackets: ``[src/app.py:12]``.
"""

DECISIONS = ("approve", "request-changes")
SEVERITIES = ("blocker", "major", "minor", "note")


class FindingError(ValueError):
    pass


def parse_decision(word: str) -> str:
    low = word.strip().lower().replace("_", "-")
    if low in ("approve", "approved", "lgtm"):
        return "approve"
    if low in ("request-changes", "changes-requested", "request changes", "reject"):
        return "request-changes"
    raise FindingError(f"unknown verdict {word!r}: use approve or request-changes")


def _looks_like_path(word: str) -> bool:
    path, _, line = word.partition(":")
    if not path or (line and not line.isdigit()):
        return False
    return "/" in path or ("." in path.strip(".") and not path.endswith("."))


def parse_finding(line: str) -> dict:
    head, colon, rest = line.partition(":")
    severity = head.strip().lower()
    if not colon or severity not in SEVERITIES:
        raise FindingError(f"finding {line.strip()[:80]!r} must start with blocker:, major:, minor: or note:")
    rest = rest.strip()
    path, at = "", None
    if rest.startswith("["):
        inner, close, after = rest[1:].partition("]")
        if close:
            path, rest = inner.strip(), after.strip()
    else:
        first, _, after = rest.partition(" ")
        if _looks_like_path(first) and after.strip():
            path, rest = first, after.strip()
    if path and ":" in path:
        path, _, number = path.rpartition(":")
        at = int(number) if number.isdigit() else None
    if not rest:
        raise FindingError(f"finding {line.strip()[:80]!r} has no text")
    return {"severity": severity, "path": path, "line": at, "text": rest}


def parse_findings(text: str) -> list[dict]:
    """One finding per non-blank line; a line that is not a finding is an error naming its number."""
    findings = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            findings.append(parse_finding(line))
        except FindingError as exc:
            raise FindingError(f"line {number}: {exc}") from None
    return findings


def format_finding(f: dict, brackets: bool = False) -> str:
    """One finding as a line; with ``brackets`` the path is written ``[path:line]`` (parses back unambiguously)."""
    where = f["path"] + (f":{f['line']}" if f.get("line") else "") if f.get("path") else ""
    if brackets:
        first = f["text"].split(" ", 1)[0]
        if where or f["text"].startswith("[") or _looks_like_path(first):
            where = f"[{where}]"  # "[]" when there is no path but the text could be read as one
    return f"{f['severity']}: {where + ' ' if where else ''}{f['text']}"


def count(findings: list[dict]) -> dict[str, int]:
    return {s: sum(1 for f in findings if f["severity"] == s) for s in SEVERITIES}


def summary(decision: str, findings: list[dict]) -> str:
    """``request-changes, 2 blockers, 1 minor`` (the branch review's progress line)."""
    counts = count(findings)
    parts = [f"{n} {s}{'s' if n != 1 else ''}" for s, n in counts.items() if n]
    return ", ".join([decision, *parts]) if parts else decision


def from_final_message(text: str) -> tuple[str, list[dict]] | None:
    """A verdict block at the end of a reviewer's final message, for reviewers that cannot run `orch verdict`:

        VERDICT: request-changes
        blocker: src/app.py:12 crashes on empty input
        minor: [README.md] undocumented

    The last ``VERDICT:`` line counts; the finding lines follow it (lines that are not findings end the block).
    """
    lines = text.replace("\r\n", "\n").split("\n")
    start = None
    for i, line in enumerate(lines):
        if line.strip().upper().startswith("VERDICT:"):
            start = i
    if start is None:
        return None
    try:
        decision = parse_decision(lines[start].split(":", 1)[1].strip().strip("*`").strip())
    except FindingError:
        return None
    findings = []
    for line in lines[start + 1 :]:
        if not line.strip():
            continue
        try:
            findings.append(parse_finding(line.strip().lstrip("-* ").strip()))
        except FindingError:
            break
    return decision, findings
