"""The agent's counters and histograms, under Lookout for Vision's CloudWatch names.

One `AgentMetrics` per agent, on its own prometheus_client registry (never the process-global one,
so two agents in one test process do not mix). The hot path (`record_detection`) touches only
label children cached per model component: a dict lookup, a few counter increments and one
histogram observation. Everything that can be read at scrape time instead (model states, queue
depths, frame mode) is read then, by a collector, and costs the hot path nothing.
"""

from __future__ import annotations

import contextlib
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from edge_agent.errors import AgentError
from edge_agent.lifecycle import status_name
from edge_agent.observability.labels import ModelLabels, read_labels
from edge_agent.protocol.edge_agent_pb2 import FAILED, RUNNING, STARTING, STOPPED, STOPPING

MODEL_LABELS = ("model_component", "project", "model_version")
STATES = (STOPPED, STARTING, RUNNING, FAILED, STOPPING)
# Seconds; the CloudWatch `Time` metric is the same measure in milliseconds.
TIME_BUCKETS = (0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0)
RECENT_LATENCIES = 1024  # per model, for the dashboard's exact p50/p99 over the last calls


class Outcome(NamedTuple):
    """How one DetectAnomalies call ended, as the counters see it."""

    code: str  # gRPC status code name
    anomalous: bool = False
    seconds: float = 0.0


@dataclass
class _Series:
    """Label children of one model component, resolved once (labels.child() is the slow part)."""

    labels: ModelLabels
    processed: Any
    anomalies: Any
    invalid: Any
    successful: Any
    errors: Any
    throttled: Any
    time: Any
    recent: deque  # latest latencies in seconds (the dashboard's p50/p99)


class AgentMetrics:
    """Counters per model component; `exposition()` is the Prometheus text format."""

    def __init__(
        self,
        model_directory: Callable[[str], Any],
        model_states: Callable[[], list[Any]],
        in_flight: Callable[[], dict[str, int]],
        frames_in_place: Callable[[], bool],
        fallback_copies: Callable[[], int],
        detect_calls: Callable[[], int],
    ) -> None:
        # No `_created` samples: they double the text and no dashboard here reads them (process-wide
        # in prometheus_client; the agent is the only user in its process).
        getattr(prometheus_client, "disable_created_metrics", lambda: None)()
        self.registry = CollectorRegistry(auto_describe=False)
        self._model_directory = model_directory
        self._lock = threading.Lock()
        self._series: dict[str, _Series] = {}
        self._sinks: list[Callable[[ModelLabels, Outcome], None]] = []

        def counter(name: str, doc: str) -> Counter:
            return Counter(name, doc, MODEL_LABELS, registry=self.registry)

        self.processed = counter(
            "lookoutvision_processed_image_count", "ProcessedImageCount: images run through detection"
        )
        self.anomalies = counter(
            "lookoutvision_detected_anomaly_count", "DetectedAnomalyCount: images found anomalous"
        )
        self.invalid = counter(
            "lookoutvision_invalid_image_count",
            "InvalidImageCount: DetectAnomalies calls refused for their image (INVALID_ARGUMENT)",
        )
        self.successful = counter(
            "lookoutvision_successful_request_count",
            "SuccessfulRequestCount: DetectAnomalies calls answered OK",
        )
        self.errors = counter(
            "lookoutvision_error_count",
            "ErrorCount: DetectAnomalies calls that failed, other than throttled ones",
        )
        self.throttled = counter(
            "lookoutvision_throttled_count",
            "ThrottledCount: DetectAnomalies calls refused with RESOURCE_EXHAUSTED (queue full, no capacity)",
        )
        self.time = Histogram(
            "lookoutvision_time_seconds",
            "Time: seconds to answer a successful DetectAnomalies call (CloudWatch: milliseconds)",
            MODEL_LABELS,
            buckets=TIME_BUCKETS,
            registry=self.registry,
        )
        self.requests = Counter(
            "edge_agent_grpc_requests",
            "EdgeAgent RPCs by method and status code (RESOURCE_EXHAUSTED included)",
            ("method", "code"),
            registry=self.registry,
        )
        self.frames = Counter(
            "edge_agent_frames",
            "Bitmaps received by DetectAnomalies, by transport: inline, shared_memory_in_place, "
            "shared_memory_copied",
            ("model_component", "transport"),
            registry=self.registry,
        )
        self.registry.register(
            _ScrapeTimeCollector(
                self, model_states, in_flight, frames_in_place, fallback_copies, detect_calls
            )
        )

    # sinks ---------------------------------------------------------------------------------------
    def add_sink(self, sink: Callable[[ModelLabels, Outcome], None]) -> None:
        """Also hand every detection outcome to `sink` (the dashboard's store); it must be quick."""
        self._sinks.append(sink)

    # the hot path --------------------------------------------------------------------------------
    def series(self, name: str) -> _Series:
        found = self._series.get(name)
        if found is not None:
            return found
        labels = read_labels(name, self._model_directory(name))
        with self._lock:
            found = self._series.get(name)
            if found is None or found.labels != labels:
                found = self._series[name] = _Series(
                    labels,
                    self.processed.labels(*labels),
                    self.anomalies.labels(*labels),
                    self.invalid.labels(*labels),
                    self.successful.labels(*labels),
                    self.errors.labels(*labels),
                    self.throttled.labels(*labels),
                    self.time.labels(*labels),
                    deque(maxlen=RECENT_LATENCIES),
                )
        return found

    def record_detection(self, name: str, outcome: Outcome) -> None:
        """Count one DetectAnomalies call of a known model component."""
        series = self.series(name)
        if outcome.code == "OK":
            series.successful.inc()
            series.processed.inc()
            if outcome.anomalous:
                series.anomalies.inc()
            series.time.observe(outcome.seconds)
            series.recent.append(outcome.seconds)
        elif outcome.code == "RESOURCE_EXHAUSTED":
            series.throttled.inc()
        else:
            series.errors.inc()
            if outcome.code == "INVALID_ARGUMENT":
                series.invalid.inc()
        for sink in self._sinks:
            sink(series.labels, outcome)

    def model_changed(self, name: str, status: int | None) -> None:
        """Registry listener: a (re)start or removal may bring another package, so labels are re-read."""
        if status in (STARTING, None):
            with self._lock:
                self._series.pop(name, None)
        elif status == RUNNING:
            # Read the labels now, on the registry's thread, so the first call does not read the
            # manifest on the event loop.
            with contextlib.suppress(AgentError):  # removed meanwhile: the next call finds out
                self.series(name)

    # reading -------------------------------------------------------------------------------------
    def known_labels(self, name: str) -> ModelLabels | None:
        found = self._series.get(name)
        return None if found is None else found.labels

    def recent_latencies(self, name: str) -> list[float]:
        found = self._series.get(name)
        return [] if found is None else list(found.recent)

    def totals(self) -> dict[str, dict[str, float]]:
        """Per model component, the counters since the agent started (summed over label sets)."""
        out: dict[str, dict[str, float]] = {}
        for family in self.registry.collect():
            if not family.name.startswith("lookoutvision_") or family.type != "counter":
                continue
            key = family.name[len("lookoutvision_") :]
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    model = out.setdefault(sample.labels["model_component"], {})
                    model[key] = model.get(key, 0.0) + sample.value
        return out

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class _ScrapeTimeCollector:
    """Gauges read when scraped: model state, queue depth, calls in progress, frame mode."""

    def __init__(
        self,
        metrics: AgentMetrics,
        model_states: Callable[[], list[Any]],
        in_flight: Callable[[], dict[str, int]],
        frames_in_place: Callable[[], bool],
        fallback_copies: Callable[[], int],
        detect_calls: Callable[[], int],
    ) -> None:
        self._metrics = metrics
        self._model_states = model_states
        self._in_flight = in_flight
        self._frames_in_place = frames_in_place
        self._fallback_copies = fallback_copies
        self._detect_calls = detect_calls

    def collect(self) -> Iterator[Metric]:
        state = GaugeMetricFamily(
            "edge_agent_model_state",
            "1 for the model component's current state (STOPPED, STARTING, RUNNING, FAILED, STOPPING), 0 for the others",
            labels=(*MODEL_LABELS, "state"),
        )
        for info in self._model_states():
            labels = self._metrics.known_labels(info.name)
            project, version = (labels.project, labels.model_version) if labels else ("", "")
            for value in STATES:
                state.add_metric(
                    [info.name, project, version, status_name(value)], 1.0 if info.status == value else 0.0
                )
        yield state
        depth = GaugeMetricFamily(
            "edge_agent_model_queue_depth",
            "DetectAnomalies requests of a RUNNING model being run or waiting for a run slot",
            labels=("model_component",),
        )
        for name, count in sorted(self._in_flight().items()):
            depth.add_metric([name], float(count))
        yield depth
        yield GaugeMetricFamily(
            "edge_agent_detect_calls_in_progress",
            "DetectAnomalies calls the agent is handling (all models; --detect-threads is the limit)",
            value=float(self._detect_calls()),
        )
        yield GaugeMetricFamily(
            "edge_agent_shared_memory_frames_in_place",
            "1 when shared-memory frames are read in place (SIGBUS guard built), 0 when they are copied",
            value=1.0 if self._frames_in_place() else 0.0,
        )
        fallback = CounterMetricFamily(
            "edge_agent_shared_memory_fallback_copies",
            "Shared-memory frames copied although in-place reading is on (guard table full, mmap failed)",
        )
        fallback.add_metric([], float(self._fallback_copies()))
        yield fallback
