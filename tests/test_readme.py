"""The README is the manual: every command in `orch --help` has its section, and every section a real command."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def help_commands() -> set[str]:
    out = subprocess.run([sys.executable, "-m", "orch", "--help"], capture_output=True, text=True, check=True).stdout
    block = out.split("\nTasks:\n", 1)[1]  # the commands, in their groups
    return {line.split()[0] for line in block.splitlines() if line.startswith("  ") and not line.startswith("   ")}


def test_help_groups_the_commands_and_shows_no_python_types() -> None:
    out = subprocess.run([sys.executable, "-m", "orch", "--help"], capture_output=True, text=True, check=True).stdout
    groups = [line for line in out.splitlines() if line.endswith(":") and not line.startswith(" ")]
    assert groups == ["Options:", "Tasks:", "Workers:", "The daemon:", "Many hosts:", "Commands agents call:", "Your shell:"]
    for command in ("add", "send", "status", "retry", "exec"):
        text = subprocess.run([sys.executable, "-m", "orch", command, "--help"], capture_output=True, text=True,
                              check=True).stdout
        assert "<str>" not in text and "<list[" not in text and "<int>" not in text, text


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
