"""The one exception type for expected failures: a single line for the user, and an exit code."""


class OrchError(Exception):
    """An expected failure. ``str(err)`` is the one line shown to the user (what went wrong, what to do)."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code
