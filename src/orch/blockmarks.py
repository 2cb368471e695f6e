"""The lines that delimit orch's block in a task file (taskfile.py parses and renders it), and the cheapest way to
read a task's state from a file: for the hot path, which must not import the task-file machinery."""

MARKER = "<!-- orch: the lines below are written by orch; edit above this line -->"
SUMMARY = "## Summary"
STATUS = "## Status"


def state_in(text: str) -> str:
    """The ``state:`` of the summary in orch's block (after the last marker line), "queued" when there is none."""
    at = text.rfind(MARKER)
    if at < 0:
        return "queued"
    block = text[at:].replace("\r\n", "\n")
    start = block.find("\n" + SUMMARY + "\n")
    if start < 0:
        return "queued"
    for line in block[start + len(SUMMARY) + 2 :].split("\n"):
        if line.rstrip() == STATUS:
            break
        if line.startswith("state:"):
            return line[len("state:") :].strip() or "queued"
    return "queued"
