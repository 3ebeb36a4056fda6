"""One error type for everything a user can fix: the CLI prints its message on one line and exits 2."""


class DistillError(Exception):
    """A user-fixable problem. The message names the file/field, what was expected and how to fix it."""

    def __init__(self, message: str):
        super().__init__(" ".join(message.split()))


def first_line(text: str, limit: int = 160) -> str:
    """The first non-blank line of a (library's) message, cut to ``limit``: enough for a one-line error."""
    return (text.strip().splitlines() or [""])[0][:limit]
