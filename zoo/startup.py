"""Importing TensorFlow without its native start-up lines on every command.

TensorFlow's C++ runtime writes a few lines straight to the process's stderr when it loads
(oneDNN's "custom operations are on" notice, absl's "All log messages before
absl::InitializeLog() is called ..."); ``TF_CPP_MIN_LOG_LEVEL`` does not reach all of them. The
zoo imports TensorFlow once, first thing (``zoo/__init__.py``), with file descriptor 2 pointed at
a scratch file, and keeps what was written there: ``zoo --verbose`` prints it
(:func:`held_back`), and it is printed at once if the import fails. Set
``ATTENTION_ZOO_TF_LOGS=1`` to let the lines through as they are.

It also turns TensorFlow's oneDNN kernels on where TensorFlow leaves them off (x86 CPUs without
AVX512 / AMX: :func:`enable_onednn`), because they train the zoo's models faster there.
"""

import os
import sys
import tempfile

_held_back = ""


def held_back():
    """What TensorFlow's native runtime wrote to stderr while the zoo imported it."""
    return _held_back


def enable_onednn():
    """Ask TensorFlow for its oneDNN CPU kernels unless the user chose (``TF_ENABLE_ONEDNN_OPTS``).

    TensorFlow turns oneDNN on by itself only on x86 CPUs with AVX512-VNNI / AVX512-BF16 / AMX; on
    the others (AVX2 only) it runs Eigen kernels. Measured on a 2-core AVX2-only AMD EPYC (Zen 3),
    ABN ResNet-20 at batch 128: training 77.7 -> 125.7 images/s (1.62x), inference 456 -> 525.
    The variable is read when TensorFlow loads, so this only acts before the first import of
    TensorFlow; ``TF_ENABLE_ONEDNN_OPTS=0`` keeps the Eigen kernels (bit-for-bit older results).
    """
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")


def import_tensorflow_quietly():
    """Import Keras and (where installed) TensorFlow with their native stderr lines held back."""
    global _held_back
    enable_onednn()
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
