"""The nucleus's BROKEN rule: the third error within an hour of the previous one (Lifecycle.java)."""

from __future__ import annotations

from edge_agent.greengrass_runner.error_window import ErrorWindow


def test_third_error_within_an_hour_is_broken_and_a_quiet_hour_starts_again() -> None:
    now = [0.0]
    window = ErrorWindow(clock=lambda: now[0])
    assert window.record() is False
    now[0] = 3000.0
    assert window.record() is False
    now[0] = 3000.0 + 3600.0  # an hour after the last error: the count starts again
    assert window.record() is False and window.times == [6600.0]
    now[0] += 10
    assert window.record() is False
    now[0] += 10
    assert window.record() is True


def test_counts_persist_across_restarts_through_the_times() -> None:
    now = [100.0]
    first = ErrorWindow(clock=lambda: now[0])
    first.record()
    first.record()
    assert ErrorWindow(first.times, clock=lambda: now[0]).record() is True
