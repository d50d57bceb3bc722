"""The exception types for bad user input and for termination.

Every reader raises :class:`InputError` with a one-line message that names the file and the
problem; the CLI prints it and exits with status 2, having written nothing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


class InputError(ValueError):
    """Bad input: missing columns, unsorted timestamps, NaN, wrong units, mismatched sizes...

    One argument is the whole message, naming no file: how a DataLoader worker's error is
    rebuilt in the loading process.

    Example:
        >>> str(InputError("gyro.csv", "NaN at line 3")), str(InputError("", "NaN at line 3"))
        ('gyro.csv: NaN at line 3', 'NaN at line 3')
    """

    def __init__(self, source: str | Path | None, problem: str | None = None) -> None:
        if problem is None:
            source, problem = None, str(source)
        # "": a log or footage built in Python, which names no file.
        self.source = None if source is None or str(source) == "" else str(source)
        self.problem = problem
        super().__init__(problem if self.source is None else f"{self.source}: {problem}")

    def __reduce__(self) -> tuple:
        return type(self), (self.source, self.problem)

    def located(self, source: str | Path) -> InputError:
        """This error, or the same problem at ``source`` where it names no file: for a check
        deep down whose caller knows which file the input came from.

        Example:
            >>> str(InputError(None, "NaN at line 3").located("gyro.csv"))
            'gyro.csv: NaN at line 3'
        """
        return self if self.source is not None else InputError(source, self.problem)


def is_whole(value: object, at_least: int = 0) -> bool:
    """Whether ``value`` is an integer (Python's or NumPy's, not a bool) of at least
    ``at_least``: a count, a size or a seed as a caller may pass it.

    Example:
        >>> is_whole(3, at_least=1), is_whole(True), is_whole(2.0), is_whole(-1)
        (True, False, False, False)
    """
    return isinstance(value, int | np.integer) and not isinstance(value, bool) \
        and value >= at_least


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, ``timeout``, a batch scheduler's time limit), raised where Ctrl-C's
    ``KeyboardInterrupt`` would be, so that the same clean-up runs (no half-written output; a
    training run checkpoints)."""
