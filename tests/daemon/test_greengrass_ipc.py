"""The Greengrass side of observability: metrics to aws.greengrass.Cloudwatch, results to IoT Core.

The agent, its metrics endpoint and its gRPC socket are real. The Greengrass nucleus is not: it is
a Java process with an EventStream-RPC IPC socket and per-component auth tokens, which cannot run
here, and faking that socket protocol would test the fake. So the IPC client object
(GreengrassCoreIPCClientV2) is replaced by a recorder with the same methods; the messages are built
with awsiotsdk's real model classes and checked against what aws.greengrass.Cloudwatch and the
mqttproxy expect.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from PIL import Image

from edge_agent.observability.cloudwatch import Publisher, ipc_publisher
from edge_agent.observability.scrape import fetch
from edge_agent.protocol import edge_agent_pb2_grpc as pb_grpc
from tests.daemon.helpers import anomalous_image, code_of, normal_image

pytest.importorskip("awsiot.greengrasscoreipc.model", reason="awsiotsdk is not installed (dev extra)")
from awsiot.greengrasscoreipc.model import QOS, PublishMessage

pytestmark = pytest.mark.timeout(180)
REPO = Path(__file__).resolve().parents[2]


class RecordingIPCClient:
    """Stands in for GreengrassCoreIPCClientV2 (the nucleus cannot run here): records the calls."""

    def __init__(self) -> None:
        self.topic_messages: list[tuple[str, PublishMessage]] = []
        self.iot_core: list[dict] = []

    def publish_to_topic(self, *, topic: str, publish_message: PublishMessage) -> None:
        self.topic_messages.append((topic, publish_message))

    def publish_to_iot_core(self, *, topic_name: str, qos: str, payload: bytes) -> None:
        self.iot_core.append({"topic_name": topic_name, "qos": qos, "payload": payload})


def by_metric(client: RecordingIPCClient, component_project: str) -> dict[str, float]:
    out = {}
    for topic, message in client.topic_messages:
        assert topic == "cloudwatch/metric/put"
        request = message.json_message.message["request"]
        assert request["namespace"] == "EdgeAgent/LookoutVision"
        data = request["metricData"]
        dimensions = {d["name"]: d["value"] for d in data["dimensions"]}
        assert set(dimensions) == {"ProjectName", "ModelVersion"}
        if dimensions["ProjectName"] == component_project:
            out[data["metricName"]] = data["value"]
            assert data["unit"] == ("Milliseconds" if data["metricName"] == "Time" else "Count")
    return out


def test_publisher_sends_each_interval_s_increase_to_cloudwatch(start_agent, packages):
    agent = start_agent("--metrics-address", "unix://./m.sock")
    address = f"unix://{agent.workdir / 'm.sock'}"
    agent.add_model("cls", packages.classification)
    agent.client.start_model("cls", wait=True)
    agent.client.detect("cls", normal_image())  # before the publisher's first read: never sent
    ipc = RecordingIPCClient()
    publisher = Publisher(lambda: fetch(address), ipc_publisher(ipc))
    assert publisher.tick() == 0 and ipc.topic_messages == []  # the baseline

    for image in (normal_image(), anomalous_image(dark=False), anomalous_image(dark=False)):
        agent.client.detect("cls", image)
    code_of(lambda: agent.client.detect("cls", normal_image(64, 64)))
    assert publisher.tick() == 7
    sent = by_metric(ipc, "bright-blob")
    assert {k: v for k, v in sent.items() if k != "Time"} == {
        "ProcessedImageCount": 3,
        "DetectedAnomalyCount": 2,
        "InvalidImageCount": 1,
        "SuccessfulRequestCount": 3,
        "ErrorCount": 1,
        "ThrottledCount": 0,
    }
    assert sent["Time"] > 0  # mean ms of the three calls

    ipc.topic_messages.clear()
    assert publisher.tick() == 6  # nothing new: zeros (no Time without calls)
    assert set(by_metric(ipc, "bright-blob").values()) == {0}


def test_publisher_refuses_the_reserved_aws_namespace():
    with pytest.raises(ValueError, match="reserves AWS/"):
        Publisher(lambda: "", lambda topic, message: None, namespace="AWS/LookoutVision")


def load_iot_sample():
    path = REPO / "greengrass/client-iot/edge_agent_iot_example.py"
    spec = importlib.util.spec_from_file_location("edge_agent_iot_example", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_iot_sample_publishes_each_result_to_iot_core(start_agent, packages, tmp_path):
    sample = load_iot_sample()
    agent = start_agent()
    agent.add_model("seg", packages.segmentation)
    stub = pb_grpc.EdgeAgentStub(agent.client.channel)
    sample.wait_until_running(stub, "seg", timeout_s=60)  # starts it, as the guide's loop does
    Image.fromarray(normal_image()).save(tmp_path / "part-001.png")
    Image.fromarray(anomalous_image()).save(tmp_path / "part-002.png")
    ipc = RecordingIPCClient()
    for path in sorted(tmp_path.glob("*.png")):
        sample.detect_and_publish(stub, ipc, "seg", path, "lookoutvision/results", QOS.AT_LEAST_ONCE)
    assert [call["topic_name"] for call in ipc.iot_core] == ["lookoutvision/results"] * 2
    assert {call["qos"] for call in ipc.iot_core} == {QOS.AT_LEAST_ONCE}
    normal, anomalous = (json.loads(call["payload"]) for call in ipc.iot_core)
    direct = agent.client.detect("seg", anomalous_image())
    assert normal["model_component"] == "seg" and normal["image_id"] == "part-001.png"
    assert normal["is_anomalous"] is False and anomalous["is_anomalous"] is True
    assert anomalous["confidence"] == pytest.approx(direct.confidence, abs=1e-6)
    assert anomalous["anomaly_score"] == pytest.approx(direct.anomaly_score, abs=1e-6)
    assert [a["name"] for a in anomalous["anomalies"]] == [a.name for a in direct.anomalies]
    assert anomalous["anomalies"][0]["name"] == "background"
