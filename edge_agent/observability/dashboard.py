"""The routes beside /metrics: the dashboard page, its JSON, the frame thumbnails, /healthz.

- `GET /metrics`: Prometheus text format.
- `GET /healthz`: 200 `SERVING` while the agent accepts calls, else 503 (for supervisors that speak
  HTTP rather than gRPC health).
- `GET /` : the dashboard (web/index.html, app.js, style.css and the vendored uPlot).
- `GET /api/summary?window=1d|3d|1w|2w|1m|3m|6m`: per model component: state, project, version,
  counters since the agent started, p50/p99 over the last calls, and the window's totals, anomaly
  ratio and chart series from the SQLite store.
- `GET /api/frames` and `/api/frames/<id>.png`: the ring of anomalous thumbnails (when enabled).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST

from edge_agent.lifecycle import status_name
from edge_agent.observability.frames import FrameRing
from edge_agent.observability.http_server import Reply, Request, not_found
from edge_agent.observability.metrics import AgentMetrics
from edge_agent.observability.store import WINDOWS, StatsStore, WindowSummary

WEB = Path(__file__).resolve().parent / "web"  # installed as package data
STATIC = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/style.css": ("style.css", "text/css; charset=utf-8"),
    "/vendor/uplot/uPlot.iife.min.js": ("vendor/uplot/uPlot.iife.min.js", "text/javascript; charset=utf-8"),
    "/vendor/uplot/uPlot.min.css": ("vendor/uplot/uPlot.min.css", "text/css; charset=utf-8"),
    "/vendor/uplot/LICENSE": ("vendor/uplot/LICENSE", "text/plain; charset=utf-8"),
}
# The page may load only its own files: no inline scripts, nothing from elsewhere.
CSP = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'"


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (what the dashboard shows; exact over the samples kept)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


class DashboardRoutes:
    def __init__(
        self,
        metrics: AgentMetrics,
        store: StatsStore,
        frames: FrameRing | None,
        model_states: Callable[[], list[Any]],
        serving: Callable[[], bool],
    ) -> None:
        self._metrics = metrics
        self._store = store
        self._frames = frames
        self._model_states = model_states
        self._serving = serving
        self._static: dict[str, bytes] = {}

    def __call__(self, request: Request) -> Reply:
        if request.method != "GET":
            return Reply(405, b'{"Message": "only GET here"}', headers={"Allow": "GET"})
        path = request.path
        if path == "/metrics":
            return Reply(200, self._metrics.exposition(), CONTENT_TYPE_LATEST)
        if path == "/healthz":
            serving = self._serving()
            return Reply(200 if serving else 503, b"SERVING\n" if serving else b"NOT_SERVING\n", "text/plain")
        if path in STATIC:
            return self._file(*STATIC[path])
        if path == "/api/summary":
            window = request.query.get("window", ["1d"])[0]
            if window not in WINDOWS:
                message = f"window {window[:10]!r} is not one of {', '.join(WINDOWS)}"
                return Reply(400, json.dumps({"Message": message}).encode())
            return _json(self.summary(window))
        if path == "/api/frames":
            frames = [] if self._frames is None else [f.to_json() for f in self._frames.list()]
            return _json({"enabled": self._frames is not None, "frames": frames})
        if path.startswith("/api/frames/") and path.endswith(".png") and self._frames is not None:
            try:
                frame = self._frames.get(int(path[len("/api/frames/") : -len(".png")]))
            except ValueError:
                frame = None
            if frame is not None:
                return Reply(200, frame.png, "image/png")
        return not_found(path)

    def summary(self, window: str) -> dict[str, Any]:
        states = {info.name: info for info in self._model_states()}
        totals = self._metrics.totals()
        windows: dict[str, WindowSummary] = {}
        for found in self._store.window(window):  # one model component may have run several versions
            seen = windows.get(found.model_component)
            windows[found.model_component] = found if seen is None else _merged(seen, found)
        models = []
        for name in sorted(set(states) | set(totals) | set(windows)):
            info = states.get(name)
            labels = self._metrics.known_labels(name)
            latencies = self._metrics.recent_latencies(name)
            since_start = totals.get(name, {})
            win = windows.get(name)
            p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
            models.append(
                {
                    "model_component": name,
                    "project": labels.project if labels else (win.project if win else ""),
                    "model_version": labels.model_version if labels else (win.model_version if win else ""),
                    "state": status_name(info.status) if info else "REMOVED",
                    "status_message": info.status_message if info else "",
                    "since_start": {
                        key: int(since_start.get(key, 0))
                        for key in (
                            "processed_image_count",
                            "detected_anomaly_count",
                            "invalid_image_count",
                            "successful_request_count",
                            "error_count",
                            "throttled_count",
                        )
                    },
                    "latency_ms": {
                        "p50": None if p50 is None else round(p50 * 1000, 2),
                        "p99": None if p99 is None else round(p99 * 1000, 2),
                        "samples": len(latencies),
                    },
                    "window": {
                        "totals": win.totals if win else {},
                        "anomaly_ratio": win.anomaly_ratio if win else 0.0,
                        "series": win.series if win else [],
                    },
                }
            )
        overall_processed = sum(m["window"]["totals"].get("processed", 0) for m in models)
        overall_anomalous = sum(m["window"]["totals"].get("anomalous", 0) for m in models)
        return {
            "generated_at": time.time(),
            "window": window,
            "windows": list(WINDOWS),
            "serving": self._serving(),
            "stats_persistent": self._store.path is not None,
            "frames_enabled": self._frames is not None,
            "overview": {
                "models": len(models),
                "processed": overall_processed,
                "anomalous": overall_anomalous,
                "anomaly_ratio": overall_anomalous / overall_processed if overall_processed else 0.0,
            },
            "models": models,
        }

    def _file(self, relative: str, content_type: str) -> Reply:
        body = self._static.get(relative)
        if body is None:
            body = self._static[relative] = WEB.joinpath(relative).read_bytes()
        headers = {"Content-Security-Policy": CSP} if content_type.startswith("text/html") else {}
        return Reply(200, body, content_type, headers)


def _merged(a: WindowSummary, b: WindowSummary) -> WindowSummary:
    """Two package versions of one model component, as one window (b is the later version)."""
    totals = {key: a.totals.get(key, 0) + b.totals.get(key, 0) for key in a.totals}
    series = [  # the same window, so the same buckets
        (start, processed + b.series[i][1], anomalous + b.series[i][2])
        for i, (start, processed, anomalous) in enumerate(a.series)
    ]
    return WindowSummary(b.model_component, b.project, b.model_version, totals, series)


def _json(obj: Any) -> Reply:
    return Reply(200, json.dumps(obj).encode())
