"""The intent packet: the person's task text, with its optional sections recognised by heading. Pure.

Recognised headings (any level, case-insensitive): Requirements (or Acceptance criteria), Invariants, Non-goals,
Escalate if, Validation. Headings inside fenced code blocks do not count. A section runs to the next heading of the
same or a higher level.
"""

from __future__ import annotations

from orch.record import dataclass, field

SECTION_NAMES = {
    "requirements": "requirements",
    "acceptance criteria": "requirements",
    "invariants": "invariants",
    "non-goals": "non_goals",
    "non goals": "non_goals",
    "nongoals": "non_goals",
    "escalate if": "escalate_if",
    "validation": "validation",
}


@dataclass
class Intent:
    text: str
    requirements: list[str] = field(default_factory=list)
    invariants: list[str] = field(default_factory=list)
    non_goals: list[str] = field(default_factory=list)
    escalate_if: list[str] = field(default_factory=list)
    validation: list[str] = field(default_factory=list)
    present: set[str] = field(default_factory=set)


def _heading(line: str) -> tuple[int, str] | None:
    stripped = line.lstrip()
    if len(line) - len(stripped) > 3 or not stripped.startswith("#"):
        return None
    level = len(stripped) - len(stripped.lstrip("#"))
    rest = stripped[level:]
    if level > 6 or (rest and not rest.startswith((" ", "\t"))):
        return None
    title = rest.strip().rstrip("#").strip().rstrip(":").strip()
    return level, title


SHELL_FENCES = ("", "sh", "bash", "shell", "console", "zsh")

# a section line: (text, None) outside fences, (text, info string of the fence) inside one
Line = tuple[str, "str | None"]


def _lines_by_section(text: str) -> dict[str, list[Line]]:
    """Lines of each recognised section; lines inside a fenced block carry the fence's info string."""
    sections: dict[str, list[Line]] = {}
    current: str | None = None
    current_level = 0
    fence = ""
    info = ""
    for line in text.replace("\r\n", "\n").split("\n"):
        stripped = line.strip()
        if fence:
            if stripped.startswith(fence) and set(stripped) == {fence[0]}:
                fence = ""
                continue
            if current:
                sections[current].append((line, info))
            continue
        if stripped.startswith(("```", "~~~")):
            char = stripped[0]
            run = len(stripped) - len(stripped.lstrip(char))
            fence = char * run
            words = stripped[run:].split()
            info = words[0].lower() if words else ""
            continue
        head = _heading(line)
        if head is not None:
            level, title = head
            name = SECTION_NAMES.get(title.lower())
            if name is not None:
                current, current_level = name, level
                sections.setdefault(name, [])
                continue
            if current is not None and level <= current_level:
                current = None
            if current is None:
                continue
        if current:
            sections[current].append((line, None))
    return sections


def _items(lines: list[Line]) -> list[str]:
    """Bullet or numbered items (continuation lines joined); plain paragraphs become one item each."""
    items: list[str] = []
    for line, fence in lines:
        if fence is not None:
            continue
        stripped = line.strip()
        if not stripped:
            continue
        marker = _bullet(stripped)
        if marker is not None:
            items.append(marker)
        elif items and line.startswith((" ", "\t")):
            items[-1] += " " + stripped
        else:
            items.append(stripped)
    return items


def _bullet(stripped: str) -> str | None:
    if stripped[:2] in ("- ", "* ", "+ "):
        return stripped[2:].strip()
    digits = len(stripped) - len(stripped.lstrip("0123456789"))
    if 0 < digits < 4 and stripped[digits : digits + 2] in (". ", ") "):
        return stripped[digits + 2 :].strip()
    return None


def _commands(lines: list[Line]) -> list[str]:
    """Validation commands: one per bullet, or one per line of a fenced block with no info string or a shell one
    (sh, bash, shell, console, zsh); blank and # lines skipped. Other fences (e.g. ```scripted) are not commands."""
    out: list[str] = []
    for line, fence in lines:
        stripped = line.strip()
        if fence is not None:
            if fence in SHELL_FENCES and stripped and not stripped.startswith("#"):
                out.append(stripped[2:] if stripped.startswith("$ ") else stripped)
            continue
        item = _bullet(stripped) if stripped else None
        if item:
            if item.startswith("`") and item.endswith("`") and len(item) > 1:
                item = item.strip("`").strip()
            if item:
                out.append(item)
    return out


def parse(text: str) -> Intent:
    sections = _lines_by_section(text)
    intent = Intent(text=text, present=set(sections))
    for name in ("requirements", "invariants", "non_goals", "escalate_if"):
        setattr(intent, name, _items(sections.get(name, [])))
    intent.validation = _commands(sections.get("validation", []))
    return intent
