"""Errors a user can act on from the message alone. The command-line programs print them as
one line (common.cli); everything else keeps its traceback."""


class UserError(Exception):
    """Base of the errors whose message names the file or field and says what to do."""


class ConfigError(UserError, ValueError):
    """A config that cannot run."""


class DataError(UserError, RuntimeError):
    """A dataset split that is missing, empty or unreadable."""


def first_line(error: BaseException, limit: int = 300) -> str:
    """`Type: first line of the message`, for a library error quoted inside one-line messages
    (orbax, TensorStore and torch errors run to many lines)."""
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {(lines[0] if lines else '')[:limit]}"
