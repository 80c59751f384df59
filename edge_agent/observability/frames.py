"""The last anomalous frames, as small PNG thumbnails with the mask overlaid: a bounded ring in memory.

Opt-in (`serve --dashboard-frames N`), because frames can be sensitive: nothing is written to disk,
the ring holds at most N thumbnails, and at most one frame per model component per
`min_interval_s` is taken, so a line that rejects every part does not spend its CPU on thumbnails.
The frame is read while the client still waits for its answer: a shared-memory frame is still the
one that was scored.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from edge_agent.imaging.shm import SegmentCache
from edge_agent.protocol import edge_agent_pb2 as pb
from edge_agent.server import wire

THUMBNAIL_SIDE = 224


@dataclass(frozen=True)
class Frame:
    id: int
    model_component: str
    time: float  # unix seconds
    score: float
    confidence: float
    anomalies: tuple[tuple[str, str, float], ...]  # (name, hex colour, area fraction), background excluded
    png: bytes

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "model_component": self.model_component,
            "time": self.time,
            "anomaly_score": round(self.score, 6),
            "confidence": round(self.confidence, 6),
            "anomalies": [{"name": n, "hex_color": c, "area": round(a, 6)} for n, c, a in self.anomalies],
            "url": f"api/frames/{self.id}.png",
        }


class FrameRing:
    def __init__(self, capacity: int, segments: SegmentCache, min_interval_s: float = 1.0) -> None:
        self.capacity = capacity
        self._segments = segments
        self._min_interval_s = min_interval_s
        self._frames: deque[Frame] = deque(maxlen=capacity)
        self._last_taken: dict[str, float] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    async def offer(self, name: str, request: Any, response: Any) -> None:
        """Interceptor hook for an anomalous result; takes the frame unless one was taken just now."""
        now = time.monotonic()
        with self._lock:
            if now - self._last_taken.get(name, -1e9) < self._min_interval_s:
                return
            self._last_taken[name] = now
        frame = await asyncio.get_running_loop().run_in_executor(
            None, self._thumbnail, name, request, response
        )
        with self._lock:
            self._frames.append(frame)

    def _thumbnail(self, name: str, request: Any, response: Any) -> Frame:
        call = wire.decode_detect(request)
        if isinstance(response, (bytes, bytearray, memoryview)):  # the servicer's own serialization
            response = pb.DetectAnomaliesResponse.FromString(bytes(response))
        image = self._pixels(call.pixels, call.image_bytes).reshape(call.height, call.width, 3)
        result = response.detect_anomaly_result
        step = max(1, -(-max(call.width, call.height) // THUMBNAIL_SIDE))
        small = image[::step, ::step].astype(np.uint16)
        if result.HasField("anomaly_mask"):
            mask_bitmap = result.anomaly_mask
            if mask_bitmap.WhichOneof("data") == "byte_data":
                mask_bytes = np.frombuffer(mask_bitmap.byte_data, np.uint8)
            elif call.mask_target is not None:
                mask_bytes = self._pixels(call.mask_target, call.image_bytes)
            else:
                mask_bytes = None
            if mask_bytes is not None:
                mask = mask_bytes.reshape(call.height, call.width, 3)[::step, ::step].astype(np.uint16)
                marked = mask.any(axis=2)  # background is black
                small[marked] = (small[marked] + mask[marked]) // 2  # the guide's 50% blend
        png = io.BytesIO()
        Image.fromarray(small.astype(np.uint8), "RGB").save(png, "PNG", optimize=False)
        anomalies = tuple(
            (a.name, a.pixel_anomaly.hex_color, a.pixel_anomaly.total_percentage_area)
            for a in list(result.anomalies)[1:]
        )
        return Frame(
            next(self._ids),
            name,
            time.time(),
            result.anomaly_score,
            result.confidence,
            anomalies,
            png.getvalue(),
        )

    def _pixels(self, source: Any, size: int) -> np.ndarray:
        if isinstance(source, wire.InlinePixels):
            return np.frombuffer(source.data, np.uint8)
        out = np.empty(size, np.uint8)
        self._segments.read_into(source, memoryview(out), "frame ring")
        return out

    def list(self) -> list[Frame]:
        with self._lock:
            return list(reversed(self._frames))

    def get(self, frame_id: int) -> Frame | None:
        with self._lock:
            return next((f for f in self._frames if f.id == frame_id), None)
