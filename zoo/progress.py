"""What a long command is doing (``zoo evaluate``, ``robustness``, ``benchmark``, a training run's
evaluations): on a terminal a Keras progress bar (what, how many, ETA); in a log (not a terminal,
or ``progress="lines"``, the CLI's ``--no-progress``) one line when a stage starts and one when it
ends, and with ``step_lines`` one per finished step; ``progress=False`` prints nothing.
"""

import sys
import time


def on_terminal():
    return sys.stdout.isatty()


def plural(noun, count):
    """`noun` for `count` things: "1 batch", "4 batches", "2 rows"."""
    if count == 1:
        return noun
    return f"{noun}es" if noun.endswith(("s", "sh", "ch", "x")) else f"{noun}s"


class Progress:
    """Progress of one stage of `total` steps, described by `what` (e.g. "evaluating 10000 images")."""

    def __init__(self, total, what, progress=True, unit="step", step_lines=False):
        self.total, self.what, self.unit, self.step_lines = int(total), what, unit, step_lines
        self.enabled = progress is not False
        self.start = time.perf_counter()
        self.done = 0
        self.bar = None
        if not self.enabled:
            return
        print(f"{what}: {self.total} {plural(unit, self.total)}", flush=True)
        if progress != "lines" and on_terminal():
            import keras

            self.bar = keras.utils.Progbar(self.total, unit_name=unit)

    def update(self, done, note=""):
        """`done` of the `total` steps are finished (`note`: the step's result, in a log line)."""
        self.done = done
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.update(done)
            return
        elapsed = time.perf_counter() - self.start
        if self.step_lines and done < self.total:
            eta = elapsed / max(done, 1) * (self.total - done)
            step = " ".join(part for part in (f"  {done}/{self.total}", note) if part)
            print(f"{step} ({elapsed:.0f} s, about {eta:.0f} s left)", flush=True)
        if done >= self.total:
            print(f"{self.what}: done in {elapsed:.0f} s{f' ({note})' if note else ''}", flush=True)

    def advance(self, note=""):
        """One more step is finished."""
        self.update(self.done + 1, note)
