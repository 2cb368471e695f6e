"""Write the lifecycle tables (python -m orch.lifecycle) into README.md's "The lifecycle" section."""

import re
import sys
from pathlib import Path

from orch.lifecycle import markdown

README = Path(__file__).resolve().parent.parent / "README.md"
START, END = "Every state but `done` has a way on:\n\n", "\nWho: `pass`"

text = README.read_text(encoding="utf-8")
pattern = re.compile(re.escape(START) + r".*?(?=" + re.escape(END) + ")", re.S)
if not pattern.search(text):
    sys.exit("README.md has no lifecycle tables to replace")
README.write_text(pattern.sub(lambda _: START + markdown(), text, count=1), encoding="utf-8")
