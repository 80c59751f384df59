"""What an inline mask costs to encode: the agent's one-copy writer against protobuf's Python objects.

Same detection (768x576 mask, the cookies model's size, and two anomaly entries), alternating blocks.
Run: .venv/bin/python bench/response_encoding.py [--rounds 5] [--calls 50]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from agent_overhead import percentile, time_calls

from edge_agent.inference import AnomalyArea, Detection
from edge_agent.protocol import edge_agent_pb2 as pb
from edge_agent.server import wire


def through_protobuf(call: wire.DetectCall, detection: Detection) -> bytes:
    """The previous encoder: mask to bytes, into the message, then serialized."""
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
    result.anomaly_mask.width, result.anomaly_mask.height = call.width, call.height
    result.anomaly_mask.byte_data = np.ascontiguousarray(detection.mask).tobytes()
    return pb.DetectAnomaliesResponse(detect_anomaly_result=result).SerializeToString()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=50)
    args = parser.parse_args()
    mask = np.random.default_rng(0).integers(0, 256, (576, 768, 3), dtype=np.uint8)
    areas = (AnomalyArea("background", "#000000", 0.9), AnomalyArea("cracked", "#23A436", 0.1))
    detection = Detection(True, 0.9, 0.8, 0.5, areas, mask)
    call = wire.DetectCall("cookies", 768, 576, wire.InlinePixels(b""), None)
    assert wire.encode_detection(call, detection, None) == through_protobuf(call, detection)
    paths = {
        "protobuf objects": lambda: through_protobuf(call, detection),
        "wire.encode_detection": lambda: wire.encode_detection(call, detection, None),
    }
    samples: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(args.rounds):
        for name, fn in paths.items():
            samples[name] += time_calls(fn, args.calls)
    print("| encoder | p50 ms | p99 ms |\n|---|---|---|")
    for name, values in samples.items():
        print(f"| {name} | {percentile(values, 50):.3f} | {percentile(values, 99):.3f} |")


if __name__ == "__main__":
    main()
