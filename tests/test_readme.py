"""The README is the manual: every command in `orch --help` has its section, and every section a real command."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def help_commands() -> set[str]:
    out = subprocess.run([sys.executable, "-m", "orch", "--help"], capture_output=True, text=True, check=True).stdout
    block = out.split("Commands:", 1)[1]
    return {line.split()[0] for line in block.splitlines() if line.startswith("  ") and line.split()}


def readme_commands() -> set[str]:
    found = set()
    for heading in re.findall(r"^### (`orch .*)$", README.read_text(), re.M):
        for command in re.findall(r"`orch ([^`\s]+)", heading):
            found.add(command)
    return found


def test_every_command_is_documented_and_every_documented_command_exists() -> None:
    assert help_commands() == readme_commands()


def test_readme_gives_the_quick_start_commands() -> None:
    text = README.read_text()
    assert "make demo" in text and "make test" in text
