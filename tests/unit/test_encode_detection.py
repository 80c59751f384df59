"""The agent writes DetectAnomaliesResponse bytes itself (one copy of the mask): they must be exactly
what protobuf would serialize, for every kind of result."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.inference import AnomalyArea, Detection
from edge_agent.protocol import edge_agent_pb2 as pb
from edge_agent.server import wire


def _protobuf_way(call: wire.DetectCall, detection: Detection, handle: pb.SharedMemoryHandle | None) -> bytes:
    result = pb.DetectAnomalyResult(
        is_anomalous=detection.is_anomalous,
        confidence=detection.confidence,
        anomaly_score=detection.anomaly_score,
        anomaly_threshold=detection.anomaly_threshold,
        anomalies=[
            pb.Anomaly(
                name=a.name,
                pixel_anomaly=pb.PixelAnomaly(total_percentage_area=a.area, hex_color=a.hex_color),
            )
            for a in detection.anomalies
        ],
    )
    if detection.mask is not None:
        result.anomaly_mask.width, result.anomaly_mask.height = call.width, call.height
        if handle is not None:
            result.anomaly_mask.shared_memory_handle.CopyFrom(handle)
        else:
            result.anomaly_mask.byte_data = detection.mask.tobytes()
    return pb.DetectAnomaliesResponse(detect_anomaly_result=result).SerializeToString()


unit = st.floats(0.0, 1.0, width=32)
areas = st.lists(
    st.builds(AnomalyArea, st.text(max_size=20), st.sampled_from(["#000000", "#23A436"]), unit), max_size=4
)


@settings(max_examples=150, deadline=None)
@given(
    side=st.tuples(st.integers(1, 90), st.integers(1, 70)),
    anomalous=st.booleans(),
    numbers=st.tuples(unit, unit, unit),
    anomalies=areas,
    mask_kind=st.sampled_from(["none", "inline", "segment"]),
    seed=st.integers(0, 2**16),
)
def test_written_bytes_equal_protobufs_serialization(side, anomalous, numbers, anomalies, mask_kind, seed):
    width, height = side
    mask = None
    if mask_kind != "none":
        mask = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    detection = Detection(anomalous, numbers[0], numbers[1], numbers[2], tuple(anomalies), mask)
    call = wire.DetectCall("m", width, height, wire.InlinePixels(b""), None)
    handle = (
        pb.SharedMemoryHandle(name="/mask", size=width * height * 3, offset=seed)
        if mask_kind == "segment"
        else None
    )
    written = wire.encode_detection(call, detection, handle)
    assert written == _protobuf_way(call, detection, handle)
    parsed = pb.DetectAnomaliesResponse.FromString(written).detect_anomaly_result
    if mask_kind == "inline":
        assert parsed.anomaly_mask.byte_data == mask.tobytes()


def test_a_full_size_mask_is_one_field_of_the_right_length():
    mask = np.full((576, 768, 3), 7, np.uint8)
    detection = Detection(True, 0.9, 0.8, 0.5, (AnomalyArea("cracked", "#23A436", 0.1),), mask)
    call = wire.DetectCall("m", 768, 576, wire.InlinePixels(b""), None)
    written = wire.encode_detection(call, detection, None)
    result = pb.DetectAnomaliesResponse.FromString(written).detect_anomaly_result
    assert (result.anomaly_mask.width, result.anomaly_mask.height) == (768, 576)
    assert len(result.anomaly_mask.byte_data) == 576 * 768 * 3 and set(result.anomaly_mask.byte_data) == {7}
    assert written == _protobuf_way(call, detection, None)
