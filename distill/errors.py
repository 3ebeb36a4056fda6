"""One error type for everything a user can fix: the CLI prints its message on one line and exits 2."""


class DistillError(Exception):
    """A user-fixable problem. The message names the file/field, what was expected and how to fix it."""

    def __init__(self, message: str):
        super().__init__(" ".join(message.split()))


def first_line(text: str, limit: int = 160) -> str:
    """The first non-blank line of a (library's) message, cut to ``limit``: enough for a one-line error."""
    return (text.strip().splitlines() or [""])[0][:limit]


# Library exceptions that mean "this input is malformed" (exit status 2, like a DistillError), matched by
# class name so that reading this does not import pyarrow or yaml.
_BAD_INPUT_TYPES = {
    "UnicodeDecodeError",
    "JSONDecodeError",
    "ArrowInvalid",
    "ArrowTypeError",
    "YAMLError",
    "ParserError",
    "ScannerError",
}


def is_bad_input(exc: BaseException) -> bool:
    """Whether an exception that escaped the checks still says the user's input is malformed."""
    return any(cls.__name__ in _BAD_INPUT_TYPES for cls in type(exc).__mro__)


def library_error_line(exc: BaseException) -> str:
    """``Type: first meaningful line`` of a library's exception: what a one-line report can carry."""
    lines = [line.strip() for line in str(exc).splitlines()]
    text = next((line for line in lines if line and not line.startswith(("Traceback", "File "))), "")
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__
