"""How wide each CPU run is: every core for a call that is alone, a share of them when calls overlap.

Measured on the trained cookies model (bench/README.md, "Many clients"): one run on both cores of
the 2-core machine is the fastest single call, but with 8 clients the agent delivered only
0.75-0.87x the frames of one client calling the raw runtime back to back, because the cores idle
while one run's threads wait for each other between the graph's many small operators. Two
single-threaded runs side by side delivered 1.13x, at 1.7x the latency of a lone call. This picks
per run: a call that finds nothing running takes every core (the wide session); a call that
arrives while runs are in progress waits for a wide run to end, then runs beside the others on the
narrow session (its share of the cores: ort_cpu.narrow_runs), up to `parallel` at once. The two
kinds never overlap, so the cores are never oversubscribed.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class RunWidths:
    """Admission to the wide or the narrow session; `choose()` yields True for the wide one."""

    def __init__(self, parallel: int) -> None:
        if parallel < 2:
            raise ValueError(f"narrow runs need parallel >= 2, got {parallel}")
        self._parallel = parallel
        self._wide = False
        self._narrow = 0
        self._waiting = 0
        self._changed = threading.Condition()

    @contextmanager
    def choose(self) -> Iterator[bool]:
        with self._changed:
            # A call that arrives as a wide run ends must not take the cores again ahead of those
            # that waited for it: they have been queueing, so they run narrow first.
            wide = not self._wide and self._narrow == 0 and self._waiting == 0
            if wide:
                self._wide = True
            else:
                self._waiting += 1
                try:
                    while self._wide or self._narrow >= self._parallel:
                        self._changed.wait()
                finally:
                    self._waiting -= 1
                self._narrow += 1
        try:
            yield wide
        finally:
            with self._changed:
                if wide:
                    self._wide = False
                else:
                    self._narrow -= 1
                self._changed.notify_all()

    def running(self) -> tuple[int, int]:
        """(wide, narrow) runs in progress (tests watch this)."""
        with self._changed:
            return int(self._wide), self._narrow
