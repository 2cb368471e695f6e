"""What the commands print: lines, tables that fit the terminal, JSON, durations."""

from __future__ import annotations

import os
import sys


def say(text: str = "") -> None:
    sys.stdout.write(text + "\n")


def width() -> int:
    """The terminal's columns; piped output gets a wide line (200, or $COLUMNS)."""
    try:
        return os.get_terminal_size(sys.stdout.fileno()).columns
    except (OSError, ValueError):
        columns = os.environ.get("COLUMNS", "")
        return int(columns) if columns.isdigit() and int(columns) > 0 else 200


def table(headers: tuple[str, ...], rows: list[tuple[str, ...]], total: int | None = None) -> str:
    """Columns two spaces apart, each as wide as its widest cell; the last column gets what is left of ``total``
    (the terminal's width), cut with "…", and no trailing spaces."""
    total = width() if total is None else total
    cells = [headers, *rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers) - 1)]
    room = max(total - sum(w + 2 for w in widths), 20)
    bold = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    out = []
    for n, row in enumerate(cells):
        last = row[-1] if len(row[-1]) <= room else row[-1][: room - 1] + "…"
        line = "".join(f"{cell:<{w}}  " for cell, w in zip(row, widths, strict=False)) + last
        line = line.rstrip()
        out.append(f"\x1b[1m{line}\x1b[0m" if n == 0 and bold else line)
    return "\n".join(out) + "\n"


def print_json(data: object) -> None:
    import json

    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"
