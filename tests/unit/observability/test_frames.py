"""The anomalous-frame ring: thumbnails with the mask blended in, bounded, rate-limited."""

from __future__ import annotations

import asyncio
import io

import numpy as np
from PIL import Image

from edge_agent.imaging.shm import SegmentCache
from edge_agent.observability.frames import THUMBNAIL_SIDE, FrameRing
from edge_agent.protocol import edge_agent_pb2 as pb


def call(
    width: int, height: int, color: tuple[int, int, int]
) -> tuple[pb.DetectAnomaliesRequest, pb.DetectAnomaliesResponse]:
    image = np.full((height, width, 3), 100, np.uint8)
    mask = np.zeros((height, width, 3), np.uint8)
    mask[: height // 2, : width // 2] = color  # the anomaly's colour on the top-left quarter
    request = pb.DetectAnomaliesRequest(
        model_component="m", bitmap=pb.Bitmap(width=width, height=height, byte_data=image.tobytes())
    )
    result = pb.DetectAnomalyResult(
        is_anomalous=True,
        confidence=0.9,
        anomaly_score=0.8,
        anomalies=[
            pb.Anomaly(
                name="background",
                pixel_anomaly=pb.PixelAnomaly(total_percentage_area=0.75, hex_color="#000000"),
            ),
            pb.Anomaly(
                name="crack", pixel_anomaly=pb.PixelAnomaly(total_percentage_area=0.25, hex_color="#F5A623")
            ),
        ],
        anomaly_mask=pb.Bitmap(width=width, height=height, byte_data=mask.tobytes()),
    )
    return request, pb.DetectAnomaliesResponse(detect_anomaly_result=result)


def test_thumbnail_is_small_with_the_mask_blended_half_way():
    ring = FrameRing(4, SegmentCache(in_place=False), min_interval_s=0)
    asyncio.run(ring.offer("m", *call(1000, 600, (200, 0, 50))))
    (frame,) = ring.list()
    thumb = np.asarray(Image.open(io.BytesIO(frame.png)))
    assert max(thumb.shape[:2]) <= THUMBNAIL_SIDE
    assert tuple(thumb[0, 0]) == (150, 50, 75)  # (100 + mask) / 2
    assert tuple(thumb[-1, -1]) == (100, 100, 100)  # background untouched
    assert frame.anomalies == (("crack", "#F5A623", 0.25),)  # background left out
    assert ring.get(frame.id) is frame and ring.get(frame.id + 1) is None


def test_ring_is_bounded_and_takes_one_frame_per_interval():
    ring = FrameRing(3, SegmentCache(in_place=False), min_interval_s=0)
    for _ in range(5):
        asyncio.run(ring.offer("m", *call(64, 64, (255, 0, 0))))
    assert [f.id for f in ring.list()] == [5, 4, 3]  # newest first, at most 3
    slow = FrameRing(3, SegmentCache(in_place=False), min_interval_s=3600)
    for _ in range(3):
        asyncio.run(slow.offer("m", *call(64, 64, (255, 0, 0))))
    asyncio.run(slow.offer("other", *call(64, 64, (255, 0, 0))))
    assert [f.model_component for f in slow.list()] == ["other", "m"]
