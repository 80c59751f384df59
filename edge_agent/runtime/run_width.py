"""How wide each CPU run is: every core for a call that is alone, a share of them when calls overlap.

Measured on the trained cookies model (bench/README.md, "Many clients"): one run on both cores of
the 2-core machine is the fastest single call, but with 8 clients the agent delivered only
0.75-0.87x the frames of one client calling the raw runtime back to back, because the cores idle
while one run's threads wait for each other between the graph's many small operators. Two
single-threaded runs side by side delivered 1.13x, at 1.7x the latency of a lone call. This picks
per run: a call that finds nothing running takes every core (the wide session); a call that
arrives while runs are in progress waits for a wide run to end, then runs beside the others on the
narrow session (its share of the cores: `narrow_runs`), up to `parallel` at once. The two
kinds never overlap, so the cores are never oversubscribed.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from edge_agent.runtime.base import RuntimeOptions


@dataclass(frozen=True)
class NarrowRuns:
    """The second session for runs that overlap: `runs` of them at once, `threads` each."""

    runs: int
    threads: int


def narrow_runs(options: RuntimeOptions, cores: int | None = None) -> NarrowRuns | None:
    """Overlapping runs share the cores a lone run takes: up to one run per core, each on its share
    (one core each on 2 cores, 4 each for 2 runs on Jetson Xavier's 8). None where there is
    nothing to share: one run at a time, or runs that take one core anyway."""
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    wide = options.intra_op_threads or cores
    runs = min(options.parallel_runs, wide)
    if runs < 2:
        return None
    return NarrowRuns(runs=runs, threads=wide // runs)


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

    def waiting(self) -> int:
        """Calls waiting for a run (tests watch this)."""
        with self._changed:
            return self._waiting
