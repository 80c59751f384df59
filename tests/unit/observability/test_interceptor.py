"""The interceptor reads is_anomalous from the servicer's own serialized answer without parsing it."""

from __future__ import annotations

import numpy as np
import pytest

from edge_agent.inference import AnomalyArea, Detection
from edge_agent.observability.interceptor import is_anomalous
from edge_agent.protocol import edge_agent_pb2 as pb
from edge_agent.server import wire


@pytest.mark.parametrize("anomalous", [True, False])
@pytest.mark.parametrize("with_mask", [True, False])
def test_is_anomalous_from_encoded_bytes(anomalous, with_mask):
    image = np.zeros((96, 128, 3), np.uint8)
    request = pb.DetectAnomaliesRequest(
        model_component="m", bitmap=pb.Bitmap(width=128, height=96, byte_data=image.tobytes())
    )
    detection = Detection(
        is_anomalous=anomalous,
        confidence=0.75,
        anomaly_score=0.9 if anomalous else 0.1,
        anomaly_threshold=0.5,
        anomalies=(AnomalyArea("background", "#000000", 1.0),) if with_mask else (),
        mask=np.zeros((96, 128, 3), np.uint8) if with_mask else None,
    )
    encoded = wire.encode_detection(wire.decode_detect(request), detection, None)
    assert is_anomalous(encoded) is anomalous
    parsed = pb.DetectAnomaliesResponse.FromString(encoded)
    assert is_anomalous(parsed) is anomalous == parsed.detect_anomaly_result.is_anomalous


def test_empty_and_message_forms():
    assert is_anomalous(b"") is False
    assert is_anomalous(pb.DetectAnomaliesResponse()) is False
    message = pb.DetectAnomaliesResponse(detect_anomaly_result=pb.DetectAnomalyResult(is_anomalous=True))
    assert is_anomalous(message.SerializeToString()) is True
