"""Progress of a long step in a job's log: steps done, elapsed time and an estimate of what is left.

A job's log is the only window an operator has on a run that takes minutes (training at a
million members, features, scoring); a line per step says it is moving and when it ends.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Progress:
    """``advance(what)`` after each of ``total`` steps prints ``[label] i/total what: elapsed, ETA``.

    The estimate is the mean time of the steps so far times the steps left. ``emit`` is where
    the lines go (``print`` in a job; a list's ``append`` in a test)."""

    label: str
    total: int
    emit: Callable[[str], None] = print
    done: int = 0
    started: float = field(default_factory=time.perf_counter)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def advance(self, what: str) -> None:
        """One step done (safe from several threads: training's folds run in parallel)."""
        with self._lock:
            self.done += 1
            done = self.done
        elapsed = time.perf_counter() - self.started
        left = elapsed / done * (self.total - done)
        self.emit(f"[{self.label}] {done}/{self.total} {what}: elapsed {elapsed:.1f} s, "
                  f"about {left:.0f} s left")

    def note(self, what: str) -> None:
        """A line without a step (a phase starting), with the elapsed time."""
        self.emit(f"[{self.label}] {what} (elapsed {time.perf_counter() - self.started:.1f} s)")
