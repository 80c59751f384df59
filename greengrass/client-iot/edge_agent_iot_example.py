"""Edge Agent sample: detect anomalies in a folder's images and publish each result to AWS IoT Core.

As AWS's samples did: the result of every DetectAnomalies call goes to an MQTT topic through
Greengrass IPC (`GreengrassCoreIPCClientV2.publish_to_iot_core`, awsiotsdk), as one JSON object:
model component, image id, is_anomalous, confidence, anomaly score and threshold, anomalies. The
component's accessControl must allow `aws.greengrass#PublishToIoTCore` on the topic (see recipe).
Needs grpcio, protobuf, Pillow, awsiotsdk and the stubs generated from edge-agent.proto (shipped
beside this script as artifacts, or importable from the anomaly-edge-agent package).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

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


def wait_until_running(stub: Any, component: str, timeout_s: float = 300.0) -> None:
    """The guide's loop: RUNNING -> done, STOPPED -> StartModel, FAILED -> raise, otherwise wait."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            status = stub.DescribeModel(pb2.DescribeModelRequest(model_component=component)).model_description
        except grpc.RpcError as exc:
            if exc.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.NOT_FOUND):
                raise
            time.sleep(1)  # agent still starting, or the model not linked yet
            continue
        name = pb2.ModelStatus.Name(status.status)
        if name == "RUNNING":
            return
        if name == "FAILED":
            raise RuntimeError(f"model {component} failed: {status.status_message}")
        if name == "STOPPED":
            stub.StartModel(pb2.StartModelRequest(model_component=component))
        time.sleep(0.5)
    raise TimeoutError(f"model {component} did not reach RUNNING within {timeout_s:.0f} s")


def result_message(component: str, image_id: str, result: Any) -> dict[str, Any]:
    """The JSON published for one image."""
    return {
        "model_component": component,
        "image_id": image_id,
        "timestamp": time.time(),
        "is_anomalous": result.is_anomalous,
        "confidence": round(result.confidence, 6),
        "anomaly_score": round(result.anomaly_score, 6),
        "anomaly_threshold": round(result.anomaly_threshold, 6),
        "anomalies": [
            {
                "name": a.name,
                "total_percentage_area": round(a.pixel_anomaly.total_percentage_area, 8),
                "hex_color": a.pixel_anomaly.hex_color,
            }
            for a in result.anomalies
        ],
    }


def detect_and_publish(
    stub: Any, ipc: Any, component: str, path: Path, topic: str, qos: str
) -> dict[str, Any]:
    """DetectAnomalies on one image file, then publish its result; returns the message."""
    with Image.open(path) as image:
        rgb = image.convert("RGB")
    request = pb2.DetectAnomaliesRequest(
        model_component=component,
        bitmap=pb2.Bitmap(width=rgb.width, height=rgb.height, byte_data=bytes(rgb.tobytes())),
    )
    result = stub.DetectAnomalies(request, timeout=60).detect_anomaly_result
    message = result_message(component, path.name, result)
    ipc.publish_to_iot_core(topic_name=topic, qos=qos, payload=json.dumps(message).encode("utf-8"))
    return message


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--socket", default="unix:///tmp/aws.iot.lookoutvision.EdgeAgent.sock")
    parser.add_argument("--model-component", required=True)
    parser.add_argument("--images", type=Path, required=True)
    parser.add_argument("--topic", required=True, help="MQTT topic in AWS IoT Core")
    parser.add_argument("--interval", type=float, default=0.0, help="seconds between passes; 0 = one pass")
    args = parser.parse_args()
    from awsiot.greengrasscoreipc.clientv2 import GreengrassCoreIPCClientV2
    from awsiot.greengrasscoreipc.model import QOS

    ipc = GreengrassCoreIPCClientV2()  # the nucleus's IPC socket, from the component's environment
    with grpc.insecure_channel(args.socket) as channel:
        stub = pb2_grpc.EdgeAgentStub(channel)
        wait_until_running(stub, args.model_component)
        while True:
            images = sorted(p for p in args.images.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not images:
                log(f"No images in {args.images}")
            for path in images:
                try:
                    message = detect_and_publish(
                        stub, ipc, args.model_component, path, args.topic, QOS.AT_LEAST_ONCE
                    )
                    log(f"Published {path.name} to {args.topic}: is_anomalous={message['is_anomalous']}")
                except grpc.RpcError as exc:
                    log(f"DetectAnomalies {path.name} failed: {exc.code().name} {exc.details()}")
            if args.interval <= 0:
                ipc.close()
                return 0
            time.sleep(args.interval)


if __name__ == "__main__":
    sys.exit(main())
