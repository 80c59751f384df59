"""Rate-limited log lines, on a clock the test moves."""

from __future__ import annotations

import logging

from edge_agent.server.lograte import RateLimitedLog


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def lines(caplog) -> list[str]:
    return [record.getMessage() for record in caplog.records]


def test_a_burst_then_one_a_second_and_every_suppressed_line_is_counted(caplog):
    clock = Clock()
    limited = RateLimitedLog(logging.getLogger("t"), burst=3, per_second=1.0, summary_s=10.0, clock=clock)
    with caplog.at_level(logging.INFO):
        for i in range(100):  # 100 lines in 10 s
            limited.log(logging.INFO, ("op", "CODE"), "line %d", i)
            clock.now += 0.1
        limited.flush(force=True)
    logged = [m for m in lines(caplog) if m.startswith("line")]
    suppressed = [m for m in lines(caplog) if m.startswith("event=suppressed")]
    assert logged[:3] == ["line 0", "line 1", "line 2"]
    assert 3 + 9 <= len(logged) <= 3 + 11  # the burst, then about one per second
    counted = sum(int(m.split("count=")[1].split()[0]) for m in suppressed)
    assert len(logged) + counted == 100
    assert all("key=op/CODE" in m for m in suppressed)


def test_keys_are_limited_separately(caplog):
    clock = Clock()
    limited = RateLimitedLog(logging.getLogger("t"), burst=1, per_second=0.0, clock=clock)
    with caplog.at_level(logging.INFO):
        for key in (("a",), ("a",), ("b",)):
            limited.log(logging.INFO, key, "%s", key[0])
    assert [m for m in lines(caplog) if not m.startswith("event=")] == ["a", "b"]


def test_a_summary_is_due_only_after_its_interval(caplog):
    clock = Clock()
    limited = RateLimitedLog(logging.getLogger("t"), burst=1, per_second=0.0, summary_s=10.0, clock=clock)
    with caplog.at_level(logging.INFO):
        limited.log(logging.INFO, ("k",), "first")
        limited.log(logging.INFO, ("k",), "second")
        limited.flush()
        assert not [m for m in lines(caplog) if m.startswith("event=suppressed")]
        clock.now = 10.0
        limited.flush()
    assert [m for m in lines(caplog) if m.startswith("event=suppressed")] == [
        "event=suppressed key=k count=1 similar lines not logged"
    ]
