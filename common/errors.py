"""Errors a user can act on from the message alone. The command-line programs print them as
one line (common.cli); everything else keeps its traceback."""


class UserError(Exception):
    """Base of the errors whose message names the file or field and says what to do."""


class ConfigError(UserError, ValueError):
    """A config that cannot run."""


class DataError(UserError, RuntimeError):
    """A dataset split that is missing, empty or unreadable."""
