"""Rendering helpers shared by the commands (rich tables, JSON)."""

from __future__ import annotations

import json
import sys

from rich.console import Console
from rich.table import Table

# on a terminal rich uses its width; piped output gets a wide line instead of rich's 80 columns
console = Console(highlight=False, soft_wrap=False, width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, highlight=False)


def print_json(data: object) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def table(*columns: str, title: str | None = None) -> Table:
    t = Table(title=title, title_justify="left", box=None, pad_edge=False, show_edge=False, header_style="bold")
    for c in columns:
        t.add_column(c, overflow="fold")
    return t


def duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"

