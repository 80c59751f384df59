"""Run widths: a lone call takes every core, overlapping calls share them side by side."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np
import pytest

from edge_agent.cli import build_parser
from edge_agent.cli.serve import config_from_args
from edge_agent.errors import ModelStoppedError
from edge_agent.runtime import RuntimeOptions, open_runtime
from edge_agent.runtime.run_width import NarrowRuns, RunWidths, narrow_runs
from edge_agent.testing.onnx_models import bright_blob_package

WAIT_S = 10


class Run(threading.Thread):
    """One run held open until `release` is set; `wide` says which session it was given."""

    def __init__(self, widths: RunWidths) -> None:
        super().__init__(daemon=True)
        self.widths = widths
        self.started_run = threading.Event()
        self.release = threading.Event()
        self.wide: bool | None = None

    def run(self) -> None:
        with self.widths.choose() as wide:
            self.wide = wide
            self.started_run.set()
            assert self.release.wait(WAIT_S)


def until(condition: Callable[[], bool], what: str) -> None:
    """Wait for another thread to reach a state, failing (not hanging) if it never does."""
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.01)


def started(widths: RunWidths) -> Run:
    run = Run(widths)
    run.start()
    return run


def test_a_lone_call_runs_wide_and_the_next_lone_call_too():
    widths = RunWidths(2)
    for _ in range(2):
        run = started(widths)
        assert run.started_run.wait(WAIT_S) and run.wide is True
        assert widths.running() == (1, 0)
        run.release.set()
        run.join(WAIT_S)
    assert widths.running() == (0, 0)


def test_calls_that_overlap_a_wide_run_wait_for_it_then_run_narrow_together():
    widths = RunWidths(2)
    wide = started(widths)
    assert wide.started_run.wait(WAIT_S)
    second, third = started(widths), started(widths)
    # Never beside the wide run: the cores are already taken.
    assert not second.started_run.wait(0.3) and not third.started_run.wait(0.01)
    assert widths.waiting() == 2
    wide.release.set()
    assert second.started_run.wait(WAIT_S) and third.started_run.wait(WAIT_S)
    assert (second.wide, third.wide) == (False, False)
    assert widths.running() == (0, 2) and widths.waiting() == 0
    # A call arriving now joins the narrow runs once one ends, and never runs wide meanwhile.
    fourth = started(widths)
    assert not fourth.started_run.wait(0.3)
    second.release.set()
    assert fourth.started_run.wait(WAIT_S) and fourth.wide is False
    assert widths.running() == (0, 2)
    for run in (third, fourth):
        run.release.set()
        run.join(WAIT_S)
    assert widths.running() == (0, 0)


def test_a_call_arriving_as_a_wide_run_ends_does_not_go_ahead_of_the_calls_that_waited():
    widths = RunWidths(2)
    widths._waiting = 1  # the instant after a wide run ended: its waiter is woken but not yet running
    run = started(widths)
    assert run.started_run.wait(WAIT_S) and run.wide is False
    assert widths.running() == (0, 1)
    run.release.set()
    run.join(WAIT_S)


def test_fewer_than_two_parallel_runs_is_refused():
    with pytest.raises(ValueError, match="parallel >= 2"):
        RunWidths(1)


class Recording:
    """A real session that notes each run (which of the two sessions served it)."""

    def __init__(self, session, name: str, log: list[str], gate: threading.Event | None = None) -> None:
        self._session, self._name, self._log, self._gate = session, name, log, gate

    def run(self, *args, **kwargs):
        self._log.append(self._name)
        if self._gate is not None:
            assert self._gate.wait(WAIT_S)
        return self._session.run(*args, **kwargs)


def test_cpu_runtime_serves_overlapping_calls_from_its_narrow_session(tmp_path):
    package = bright_blob_package(tmp_path / "m")
    runtime = open_runtime("cpu", package.graph_path, RuntimeOptions(intra_op_threads=2, parallel_runs=2))
    try:
        assert runtime._narrow is not None
        assert runtime._narrow.get_session_options().intra_op_num_threads == 1
        image = np.random.default_rng(0).integers(0, 255, runtime.input_shape, dtype=np.uint8)
        alone = runtime.run(image)
        log: list[str] = []
        hold = threading.Event()
        runtime._session = Recording(runtime._session, "wide", log, gate=hold)
        runtime._narrow = Recording(runtime._narrow, "narrow", log)
        results: list[dict[str, np.ndarray]] = []
        first = threading.Thread(target=lambda: results.append(runtime.run(image)))
        first.start()
        until(lambda: bool(log), "the first call runs")
        second = threading.Thread(target=lambda: results.append(runtime.run(image)))
        second.start()
        until(lambda: runtime._widths.waiting() == 1, "the second call waits: it overlaps the wide run")
        hold.set()
        first.join(WAIT_S)
        second.join(WAIT_S)
        assert log == ["wide", "narrow"]
        for result in results:  # the same graph: the same answer from either session
            for name, value in alone.items():
                np.testing.assert_array_equal(result[name], value)
    finally:
        runtime.close()


@pytest.mark.parametrize(
    ("cores", "threads", "parallel", "expected"),
    [
        (2, 0, 2, NarrowRuns(runs=2, threads=1)),  # this machine: one core each
        (8, 0, 2, NarrowRuns(runs=2, threads=4)),  # Jetson Xavier: four each
        (8, 4, 2, NarrowRuns(runs=2, threads=2)),  # --threads 4: the lone run's four, shared
        (2, 0, 3, NarrowRuns(runs=2, threads=1)),  # never more runs than cores
        (2, 1, 2, None),  # lone runs take one core anyway
        (1, 0, 2, None),
        (8, 0, 1, None),  # --concurrency 1: one run at a time
    ],
)
def test_overlapping_runs_share_the_cores_a_lone_run_takes(cores, threads, parallel, expected):
    options = RuntimeOptions(intra_op_threads=threads, parallel_runs=parallel)
    assert narrow_runs(options, cores=cores) == expected


def test_no_second_session_where_there_is_nothing_to_share(tmp_path):
    package = bright_blob_package(tmp_path / "m")
    for options in (RuntimeOptions(intra_op_threads=1, parallel_runs=2), RuntimeOptions(intra_op_threads=2)):
        runtime = open_runtime("cpu", package.graph_path, options)
        try:
            assert runtime._narrow is None and runtime._widths is None
        finally:
            runtime.close()


def test_a_call_waiting_for_its_run_when_the_model_stops_is_told_to_start_it_again(tmp_path):
    package = bright_blob_package(tmp_path / "m")
    runtime = open_runtime("cpu", package.graph_path, RuntimeOptions(intra_op_threads=2, parallel_runs=2))
    image = np.zeros(runtime.input_shape, dtype=np.uint8)
    log: list[str] = []
    hold = threading.Event()
    runtime._session = Recording(runtime._session, "wide", log, gate=hold)
    errors: list[BaseException] = []

    def call() -> None:
        try:
            runtime.run(image)
        except BaseException as exc:
            errors.append(exc)

    first = threading.Thread(target=call)
    first.start()
    until(lambda: bool(log), "the first call runs")
    second = threading.Thread(target=call)
    second.start()
    assert runtime._widths is not None
    until(lambda: runtime._widths.waiting() == 1, "the second call waits for the wide run")
    runtime.close()  # StopModel while the second call waits for the wide run to end
    hold.set()
    first.join(WAIT_S)
    second.join(WAIT_S)
    assert len(errors) == 1 and isinstance(errors[0], ModelStoppedError), errors
    assert "start it again" in str(errors[0])


@pytest.mark.parametrize(("backend", "expected"), [("cpu", 2), ("gpu", 1), ("tensorrt", 1)])
def test_serve_default_concurrency_depends_on_the_backend(backend, expected):
    args = build_parser().parse_args(["serve", "--backend", backend])
    assert config_from_args(args).registry.concurrency == expected
    args = build_parser().parse_args(["serve", "--backend", backend, "--concurrency", "3"])
    assert config_from_args(args).registry.concurrency == 3
