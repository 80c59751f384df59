"""When a component goes BROKEN: the nucleus's rule (Lifecycle.java, MAXIMUM_CONTINUAL_ERROR).

Errors are counted per lifecycle state (install, startup, run). An error more than an hour
(errorResetTime) after the previous one starts the count again; the third error within that
window makes the component BROKEN instead of ERRORED. Reaching the next state (install done,
startup done) clears that state's count; a run process that crashes keeps its count across
restarts, so three crashes within an hour are BROKEN.
"""

from __future__ import annotations

import time
from collections.abc import Callable

MAXIMUM_CONTINUAL_ERROR = 3
ERROR_RESET_S = 3600.0


class ErrorWindow:
    def __init__(
        self,
        times: list[float] | None = None,
        reset_s: float = ERROR_RESET_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.times = list(times or [])
        self.reset_s = reset_s
        self.clock = clock

    def record(self) -> bool:
        """Count one error; True when it makes the component BROKEN."""
        now = self.clock()
        if self.times and now - self.times[-1] >= self.reset_s:
            self.times.clear()
        self.times.append(now)
        return len(self.times) >= MAXIMUM_CONTINUAL_ERROR

    def clear(self) -> None:
        self.times.clear()
