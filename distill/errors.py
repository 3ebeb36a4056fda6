"""One error type for everything a user can fix: the CLI prints its message on one line and exits 2."""


class DistillError(Exception):
    """A user-fixable problem. The message names the file/field, what was expected and how to fix it."""

    def __init__(self, message: str):
        super().__init__(" ".join(message.split()))
