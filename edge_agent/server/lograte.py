"""Log lines that a client can cause, rate limited per kind so that a misbehaving client cannot fill
the log disk (a camera sending the wrong frame size 200 times a second is one line a second).

Each key (for rejections: operation and status code) has a token bucket: `burst` lines at once,
refilled at `per_second`. Lines beyond it are counted, and the count is logged as one
`event=suppressed` line per key at most every `summary_s` seconds (by the next line of that key, or
by `flush`, which the daemon calls every poll interval and at shutdown), so nothing goes unreported.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    refilled_at: float
    suppressed: int = 0
    summary_at: float = 0.0


class RateLimitedLog:
    def __init__(
        self,
        logger: logging.Logger,
        burst: int = 10,
        per_second: float = 1.0,
        summary_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = logger
        self._burst = burst
        self._rate = per_second
        self._summary_s = summary_s
        self._clock = clock
        self._buckets: dict[Hashable, _Bucket] = {}
        self._lock = threading.Lock()

    def log(self, level: int, key: tuple[str, ...], msg: str, *args: object) -> None:
        """Log `msg % args` unless `key` is over its rate; `key` is named in the suppressed summary."""
        now = self._clock()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = _Bucket(float(self._burst), now, summary_at=now)
            bucket.tokens = min(float(self._burst), bucket.tokens + (now - bucket.refilled_at) * self._rate)
            bucket.refilled_at = now
            allowed = bucket.tokens >= 1.0
            if allowed:
                bucket.tokens -= 1.0
            else:
                bucket.suppressed += 1
            summary = self._take_summary(bucket, now, force=False)
        if summary:
            self._summarise(level, key, summary)
        if allowed:
            self._log.log(level, msg, *args)

    def flush(self, force: bool = False) -> None:
        """Log the summaries that are due (all of them with `force`)."""
        now = self._clock()
        with self._lock:
            due = [(key, self._take_summary(bucket, now, force)) for key, bucket in self._buckets.items()]
        for key, count in due:
            if count:
                self._summarise(logging.INFO, key, count)

    def _take_summary(self, bucket: _Bucket, now: float, force: bool) -> int:
        if bucket.suppressed and (force or now - bucket.summary_at >= self._summary_s):
            count, bucket.suppressed, bucket.summary_at = bucket.suppressed, 0, now
            return count
        return 0

    def _summarise(self, level: int, key: tuple[str, ...], count: int) -> None:
        self._log.log(
            level, "event=suppressed key=%s count=%d similar lines not logged", "/".join(key), count
        )
