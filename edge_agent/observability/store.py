"""Detection counts per model component and hour, in SQLite: the dashboard's history across restarts.

The hot path only adds to an in-memory dict (`add`, one lock); a background thread writes the
pending counts every `flush_s` seconds and at close, in one transaction, and a query writes them
first, so what the dashboard reads is exact. Hourly buckets keep six months small (about 4,400 rows
per model); rows older than `RETENTION_DAYS` are deleted.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from edge_agent.observability.labels import ModelLabels
from edge_agent.observability.metrics import Outcome

log = logging.getLogger(__name__)

HOUR_S = 3600
DAY_S = 24 * HOUR_S
RETENTION_DAYS = 190  # the dashboard's longest window is 6 months
FIELDS = ("processed", "anomalous", "invalid", "errors", "throttled")
# The console's windows: (label, seconds, bucket seconds of the chart).
WINDOWS: dict[str, tuple[int, int]] = {
    "1d": (DAY_S, HOUR_S),
    "3d": (3 * DAY_S, 3 * HOUR_S),
    "1w": (7 * DAY_S, 6 * HOUR_S),
    "2w": (14 * DAY_S, 12 * HOUR_S),
    "1m": (30 * DAY_S, DAY_S),
    "3m": (91 * DAY_S, DAY_S),
    "6m": (182 * DAY_S, 7 * DAY_S),
}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS hourly (
    model_component TEXT NOT NULL,
    project TEXT NOT NULL,
    model_version TEXT NOT NULL,
    hour INTEGER NOT NULL,
    processed INTEGER NOT NULL DEFAULT 0,
    anomalous INTEGER NOT NULL DEFAULT 0,
    invalid INTEGER NOT NULL DEFAULT 0,
    errors INTEGER NOT NULL DEFAULT 0,
    throttled INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (model_component, project, model_version, hour)
)
"""


@dataclass(frozen=True)
class WindowSummary:
    model_component: str
    project: str
    model_version: str
    totals: dict[str, int]
    series: list[tuple[int, int, int]]  # (bucket start, unix s; processed; anomalous)

    @property
    def anomaly_ratio(self) -> float:
        processed = self.totals["processed"]
        return self.totals["anomalous"] / processed if processed else 0.0


class StatsStore:
    def __init__(self, path: Path | None, flush_s: float = 10.0, clock=time.time) -> None:
        self.path = path
        self._clock = clock
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(":memory:" if path is None else str(path), check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL" if path is not None else "PRAGMA journal_mode=MEMORY")
        self._db.execute(_SCHEMA)
        self._db.commit()
        self._db_lock = threading.Lock()
        self._pending: dict[tuple[str, str, str, int], list[int]] = {}
        self._pending_lock = threading.Lock()
        self._stop = threading.Event()
        self._last_prune = 0.0
        self._flusher = threading.Thread(target=self._run, args=(flush_s,), name="stats-flush", daemon=True)
        self._flusher.start()

    # writing -------------------------------------------------------------------------------------
    def add(self, labels: ModelLabels, outcome: Outcome) -> None:
        """AgentMetrics sink: one DetectAnomalies outcome."""
        key = (*labels, int(self._clock()) // HOUR_S * HOUR_S)
        if outcome.code == "OK":
            index = (0, 1) if outcome.anomalous else (0,)
        elif outcome.code == "RESOURCE_EXHAUSTED":
            index = (4,)
        else:
            index = (3, 2) if outcome.code == "INVALID_ARGUMENT" else (3,)
        with self._pending_lock:
            row = self._pending.get(key)
            if row is None:
                row = self._pending[key] = [0, 0, 0, 0, 0]
            for i in index:
                row[i] += 1

    def flush(self) -> None:
        with self._pending_lock:
            pending, self._pending = self._pending, {}
        if not pending:
            return
        rows = [(*key, *counts) for key, counts in pending.items()]
        with self._db_lock:
            try:
                self._db.executemany(
                    "INSERT INTO hourly (model_component, project, model_version, hour, processed, anomalous, "
                    "invalid, errors, throttled) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (model_component, project, model_version, hour) DO UPDATE SET "
                    + ", ".join(f"{f} = {f} + excluded.{f}" for f in FIELDS),
                    rows,
                )
                self._db.commit()
            except sqlite3.Error as exc:  # disk full, read-only: keep the counts for the next try
                self._db.rollback()
                log.warning("event=stats_db_write_failed path=%s reason=%r", self.path, str(exc))
                with self._pending_lock:
                    for key, counts in pending.items():
                        row = self._pending.setdefault(key, [0, 0, 0, 0, 0])
                        for i, value in enumerate(counts):
                            row[i] += value

    def _prune(self) -> None:
        now = self._clock()
        if now - self._last_prune < HOUR_S:
            return
        self._last_prune = now
        with self._db_lock:
            self._db.execute("DELETE FROM hourly WHERE hour < ?", (int(now) - RETENTION_DAYS * DAY_S,))
            self._db.commit()

    def _run(self, flush_s: float) -> None:
        while not self._stop.wait(flush_s):
            try:
                self.flush()
                self._prune()
            except Exception:
                log.exception("event=stats_db_error path=%s", self.path)

    def close(self) -> None:
        self._stop.set()
        self._flusher.join()
        self.flush()
        with self._db_lock:
            self._db.close()

    # reading -------------------------------------------------------------------------------------
    def window(self, window: str) -> list[WindowSummary]:
        """Per model component and package (project, version): totals and a chart series over `window`."""
        span, bucket = WINDOWS[window]
        self.flush()
        now = int(self._clock())
        end = now // bucket * bucket + bucket
        start = end - (span // bucket) * bucket
        with self._db_lock:
            rows = self._db.execute(
                "SELECT model_component, project, model_version, (hour - ?) / ? AS slot, "
                "SUM(processed), SUM(anomalous), SUM(invalid), SUM(errors), SUM(throttled) FROM hourly "
                "WHERE hour >= ? AND hour < ? GROUP BY model_component, project, model_version, slot",
                (start, bucket, start, end),
            ).fetchall()
        by_model: dict[tuple[str, str, str], dict[int, tuple[int, ...]]] = {}
        for component, project, version, slot, *counts in rows:
            by_model.setdefault((component, project, version), {})[int(slot)] = tuple(int(c) for c in counts)
        out = []
        for (component, project, version), slots in sorted(by_model.items()):
            totals = {f: sum(c[i] for c in slots.values()) for i, f in enumerate(FIELDS)}
            series = [(start + i * bucket, *slots.get(i, (0, 0))[:2]) for i in range((end - start) // bucket)]
            out.append(WindowSummary(component, project, version, totals, series))  # type: ignore[arg-type]
        return out
