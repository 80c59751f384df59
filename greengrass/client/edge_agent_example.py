"""Edge Agent sample application (the guide's Python example, as a Greengrass component).

Lists the models on the agent, starts the model if needed, runs DetectAnomalies on every image in
a folder and logs one JSON line per image to stdout (the component log). Needs grpcio, protobuf,
Pillow and the stubs generated from edge-agent.proto (shipped beside this script as artifacts, or
importable from the anomaly-edge-agent package).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import grpc
from PIL import Image

try:  # stubs generated with grpc_tools.protoc, shipped as artifacts next to this file
    import edge_agent_pb2 as pb2
    import edge_agent_pb2_grpc as pb2_grpc
except ImportError:  # the anomaly-edge-agent package is installed
    from edge_agent.protocol import edge_agent_pb2 as pb2
    from edge_agent.protocol import edge_agent_pb2_grpc as pb2_grpc

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}


def log(message: str) -> None:
    print(message, flush=True)


def start_model_if_needed(stub: pb2_grpc.EdgeAgentStub, component: str, timeout_s: float = 300.0) -> None:
    """The guide's loop: RUNNING -> done, STOPPED -> StartModel, FAILED -> raise, STARTING -> wait."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            description = stub.DescribeModel(
                pb2.DescribeModelRequest(model_component=component)
            ).model_description
        except grpc.RpcError as exc:
            if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.NOT_FOUND):
                time.sleep(1)  # agent still starting, or model not linked yet
                continue
            raise
        status = pb2.ModelStatus.Name(description.status)
        if status == "RUNNING":
            return
        if status == "STOPPED":
            log(f"Starting model {component}")
            stub.StartModel(pb2.StartModelRequest(model_component=component))
        elif status == "FAILED":
            raise RuntimeError(f"model {component} failed: {description.status_message}")
        else:
            log(f"Waiting for model {component}: {status}")
            if status != "STARTING":
                time.sleep(1)
        time.sleep(0.5)
    raise TimeoutError(f"model {component} did not reach RUNNING within {timeout_s:.0f} s")


def detect(stub: pb2_grpc.EdgeAgentStub, component: str, path: Path) -> dict[str, object]:
    with Image.open(path) as image:
        rgb = image.convert("RGB")
    request = pb2.DetectAnomaliesRequest(
        model_component=component,
        bitmap=pb2.Bitmap(width=rgb.width, height=rgb.height, byte_data=bytes(rgb.tobytes())),
    )
    result = stub.DetectAnomalies(request).detect_anomaly_result
    return {
        "image": path.name,
        "is_anomalous": result.is_anomalous,
        "confidence": round(result.confidence, 6),
        "anomaly_score": round(result.anomaly_score, 6),
        "anomaly_threshold": round(result.anomaly_threshold, 6),
        "anomalies": [
            {
                "name": a.name,
                "area": round(a.pixel_anomaly.total_percentage_area, 6),
                "color": a.pixel_anomaly.hex_color,
            }
            for a in result.anomalies
        ],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--socket", default="unix:///tmp/aws.iot.lookoutvision.EdgeAgent.sock")
    parser.add_argument("--model-component", required=True)
    parser.add_argument("--images", type=Path, required=True)
    parser.add_argument("--interval", type=float, default=0.0, help="seconds between passes; 0 = one pass")
    args = parser.parse_args()
    with grpc.insecure_channel(args.socket) as channel:
        stub = pb2_grpc.EdgeAgentStub(channel)
        start_model_if_needed(stub, args.model_component)
        for model in stub.ListModels(pb2.ListModelsRequest()).models:
            log(
                f'Model Details model_component:"{model.model_component}" status:{pb2.ModelStatus.Name(model.status)}'
            )
        while True:
            images = sorted(p for p in args.images.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not images:
                log(f"No images in {args.images}")
            for path in images:
                try:
                    log("DetectAnomalies " + json.dumps(detect(stub, args.model_component, path)))
                except grpc.RpcError as exc:
                    log(f"DetectAnomalies {path.name} failed: {exc.code().name} {exc.details()}")
            if args.interval <= 0:
                return 0
            time.sleep(args.interval)


if __name__ == "__main__":
    sys.exit(main())
