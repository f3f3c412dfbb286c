"""How the command-line programs (common.train, common.evaluate, common.predict, common.bench)
start and fail: a user's mistake — a misspelt `--config.` key, a bad value, a config that
cannot run, a missing file — is one line on stderr and exit status 2, not a traceback.
Programming errors still raise with their traceback."""
import difflib
import logging
import os
import sys

from absl import app, flags

from common.config import flat_config, load_file
from common.errors import ConfigError, UserError

# Errors a user can fix from the message alone.
USER_ERRORS = (UserError, FileNotFoundError, NotADirectoryError, FileExistsError)


def run(main) -> None:
    """`app.run(main)` with one-line errors for bad flags and user errors."""
    app.run(_guarded(main), flags_parser=_parse_flags)


def quiet_libraries() -> None:
    """Only warnings from the libraries whose INFO lines would bury the program's own output."""
    from absl import logging as absl_logging
    absl_logging.set_verbosity(absl_logging.WARNING)
    for noisy in ("absl", "orbax", "jax._src", "tensorflow_datasets"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def fail(message: str, status: int = 2, hard: bool = False):
    """Print `error: message` and exit. `hard` (the training / evaluation programs) skips the
    interpreter's shutdown: orbax / grain threads left behind must not turn one line into a
    page; otherwise SystemExit, which a caller (or a test) can catch."""
    sys.stdout.flush()
    print(f"error: {message}", file=sys.stderr, flush=True)
    if hard:
        logging.shutdown()
        os._exit(status)
    raise SystemExit(status)


def _guarded(main):
    def wrapped(argv):
        try:
            return main(argv)
        except USER_ERRORS as e:
            fail(str(e), hard=True)
    return wrapped


def _parse_flags(argv):
    try:
        return flags.FLAGS(argv)
    except ConfigError as e:
        fail(str(e))
    except flags.Error as e:
        # config_flags reports an exception inside get_config() as the text of its traceback
        text = str(e)
        if "Traceback (most recent call last)" in text:
            last = text.strip().splitlines()[-1]
            fail(last.split("ConfigError: ", 1)[1] if "ConfigError: " in last
                 else f"the config file raised {last}")
        fail(f"{text} (see --help)")
    except (AttributeError, KeyError, TypeError, ValueError) as e:
        fail(_explain_override(argv, e))


def _explain_override(argv, error: Exception) -> str:
    """`--config.optim.lr_peak=1` -> "unknown config key optim.lr_peak (did you mean optim.lr?)"."""
    config_arg = next((a.split("=", 1)[1] for a in argv if a.startswith("--config=")), None)
    overrides = [a[len("--config."):].split("=", 1)[0] for a in argv if a.startswith("--config.")]
    if config_arg:
        try:
            keys = list(flat_config(_load_config(config_arg)))
        except Exception:   # the config file itself is broken: say so
            return f"cannot load --config={config_arg}: {type(error).__name__}: {error}"
        for key in overrides:
            if key not in keys and not any(k.startswith(key + ".") for k in keys):
                near = difflib.get_close_matches(key, keys, n=1)
                hint = f" (did you mean {near[0]}?)" if near else ""
                return f"unknown config key {key!r} in --config.{key}{hint}"
    return f"bad flag value: {type(error).__name__}: {error}"


def _load_config(arg: str):
    path, _, preset = arg.partition(":")
    return load_file(path).get_config(preset or None)
