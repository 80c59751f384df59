"""The dashboard's SQLite store: exact window totals, chart buckets, restarts, retention."""

from __future__ import annotations

import sqlite3

import pytest

from edge_agent.observability.labels import ModelLabels
from edge_agent.observability.metrics import Outcome
from edge_agent.observability.store import DAY_S, HOUR_S, RETENTION_DAYS, StatsStore

LINE3 = ModelLabels("line-3", "cookies", "2")
T0 = 1_800_000_000 // DAY_S * DAY_S  # a midnight


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_window_totals_ratio_and_buckets(tmp_path):
    clock = Clock(T0 + 10 * HOUR_S + 5)
    store = StatsStore(tmp_path / "s.db", flush_s=3600, clock=clock)
    for _ in range(6):
        store.add(LINE3, Outcome("OK"))
    store.add(LINE3, Outcome("OK", anomalous=True))
    store.add(LINE3, Outcome("INVALID_ARGUMENT"))
    store.add(LINE3, Outcome("RESOURCE_EXHAUSTED"))
    store.add(LINE3, Outcome("INTERNAL"))
    clock.now += 2 * HOUR_S
    store.add(LINE3, Outcome("OK", anomalous=True))
    (day,) = store.window("1d")
    assert day.totals == {"processed": 8, "anomalous": 2, "invalid": 1, "errors": 2, "throttled": 1}
    assert day.anomaly_ratio == pytest.approx(2 / 8)
    assert len(day.series) == 24 and sum(p for _, p, _ in day.series) == 8
    by_hour = {start: (p, a) for start, p, a in day.series}
    assert by_hour[T0 + 10 * HOUR_S] == (7, 1) and by_hour[T0 + 12 * HOUR_S] == (1, 1)
    (half_year,) = store.window("6m")
    assert half_year.totals["processed"] == 8 and len(half_year.series) == 26
    store.close()


def test_counts_survive_a_restart_and_old_rows_go(tmp_path):
    clock = Clock(T0)
    store = StatsStore(tmp_path / "s.db", flush_s=3600, clock=clock)
    store.add(LINE3, Outcome("OK", anomalous=True))
    store.close()  # writes what is pending
    clock.now += 3 * DAY_S
    again = StatsStore(tmp_path / "s.db", flush_s=3600, clock=clock)
    assert again.window("1d") == []  # three days ago
    (week,) = again.window("1w")
    assert week.totals["anomalous"] == 1
    clock.now += RETENTION_DAYS * DAY_S
    again._prune()
    again.close()
    rows = sqlite3.connect(tmp_path / "s.db").execute("SELECT COUNT(*) FROM hourly").fetchone()
    assert rows == (0,)


def test_models_and_package_versions_are_kept_apart(tmp_path):
    store = StatsStore(None, clock=Clock(T0))
    store.add(LINE3, Outcome("OK"))
    store.add(ModelLabels("line-3", "cookies", "3"), Outcome("OK", anomalous=True))
    store.add(ModelLabels("line-4", "caps", "1"), Outcome("OK"))
    got = {(w.model_component, w.model_version): w.totals["anomalous"] for w in store.window("1d")}
    assert got == {("line-3", "2"): 0, ("line-3", "3"): 1, ("line-4", "1"): 0}
    store.close()
