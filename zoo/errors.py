"""The zoo's own errors: each says what went wrong, with the file or option named, and what to do.

The command line turns every :class:`ZooError` into one line ``zoo CMD: error: ...`` (exit 2)
instead of a traceback. Each subclass also derives from the built-in error a caller would
expect (``ValueError``, ``FileExistsError``, ...), so ``except ValueError`` keeps working.
"""


class ZooError(Exception):
    """Base class of the errors the zoo raises on purpose (bad input, refused writes, ...)."""


class InvalidInput(ZooError, ValueError):
    """An argument, option, file or data set the zoo cannot use as given."""


class OutputRefused(ZooError, FileExistsError):
    """An output the zoo will not write: it exists (and ``force`` was not given), or it is a
    folder where a file is wanted, or the reverse."""


class DamagedFile(ZooError, ValueError):
    """A saved model, checkpoint or weight file that cannot be read (truncated, corrupt, empty)."""


class TrainingDiverged(ZooError, FloatingPointError):
    """The training loss became NaN or infinite; nothing was saved as trained."""


class ResumeMismatch(ZooError, ValueError):
    """``--resume`` onto checkpoints of a different run (recipe, architecture or data)."""


class OfflineError(ZooError, ConnectionError):
    """Offline mode (``ATTENTION_ZOO_OFFLINE=1``) forbids a download the command needs."""
