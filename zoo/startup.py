"""Importing TensorFlow without its native start-up lines on every command.

TensorFlow's C++ runtime writes a few lines straight to the process's stderr when it loads
(oneDNN's "custom operations are on" notice, absl's "All log messages before
absl::InitializeLog() is called ..."); ``TF_CPP_MIN_LOG_LEVEL`` does not reach all of them. The
zoo imports TensorFlow once, first thing (``zoo/__init__.py``), with file descriptor 2 pointed at
a scratch file, and keeps what was written there: ``zoo --verbose`` prints it
(:func:`held_back`), and it is printed at once if the import fails. Set
``ATTENTION_ZOO_TF_LOGS=1`` to let the lines through as they are.
"""

import os
import sys
import tempfile

_held_back = ""


def held_back():
    """What TensorFlow's native runtime wrote to stderr while the zoo imported it."""
    return _held_back


def import_tensorflow_quietly():
    """Import Keras and (where installed) TensorFlow with their native stderr lines held back."""
    global _held_back
    if "tensorflow" in sys.modules or os.environ.get("ATTENTION_ZOO_TF_LOGS", "") not in ("", "0"):
        return
    try:
        saved = os.dup(2)
    except OSError:  # no stderr descriptor to redirect (embedded interpreters)
        return
    failed = False
    with tempfile.TemporaryFile() as captured:
        try:
            sys.stderr.flush()
            os.dup2(captured.fileno(), 2)
            try:
                import tensorflow  # noqa: F401
            except ImportError:  # JAX / PyTorch machines without TensorFlow
                pass
            import keras  # noqa: F401
        except BaseException:
            failed = True
            raise
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            _held_back = captured.read().decode(errors="replace")
            if failed:
                sys.stderr.write(_held_back)
