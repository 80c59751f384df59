"""StartModel / StopModel / DescribeModel / ListModels semantics and status codes, on a real agent."""

from __future__ import annotations

import json

import grpc
import pytest

from edge_agent.model_package import MANIFEST_NAME
from edge_agent.protocol import edge_agent_pb2 as pb
from tests.daemon.helpers import code_of, detect_request, normal_image, unique

pytestmark = pytest.mark.timeout(120)


def test_list_and_describe_report_each_model_with_its_arn_and_status(shared_agent, packages):
    a, b = unique("list-a"), unique("list-b")
    shared_agent.add_model(a, packages.classification)
    shared_agent.add_model(b, packages.segmentation)
    listed = {m.name: m for m in shared_agent.client.list_models()}
    assert listed[a].status == "STOPPED" and listed[b].status == "STOPPED"
    assert listed[a].arn.endswith("model/bright-blob/1")
    assert listed[b].arn.endswith("model/bright-blob/2")
    described = shared_agent.client.describe_model(b)
    assert (described.name, described.arn, described.status) == (b, listed[b].arn, "STOPPED")


def test_start_answers_starting_at_once_then_reaches_running(shared_agent, packages):
    name = unique("start")
    shared_agent.add_model(name, packages.classification)
    response = shared_agent.client.stub.StartModel(pb.StartModelRequest(model_component=name))
    assert response.status == pb.STARTING
    state = shared_agent.client.wait_for(name, "RUNNING", timeout_s=30)
    assert "running" in state.status_message
    code, details = code_of(lambda: shared_agent.client.start_model(name))
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    assert "RUNNING" in details and "STOPPED or FAILED" in details


def test_stop_is_synchronous_and_detect_then_needs_running(shared_agent, packages):
    name = unique("stop")
    shared_agent.add_model(name, packages.classification)
    shared_agent.client.start_model(name, wait=True)
    assert shared_agent.client.detect(name, normal_image()).is_anomalous is False
    response = shared_agent.client.stub.StopModel(pb.StopModelRequest(model_component=name))
    assert response.status == pb.STOPPED
    assert shared_agent.client.describe_model(name).status == "STOPPED"
    code, details = code_of(lambda: shared_agent.client.detect(name, normal_image()))
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "needs it RUNNING" in details
    code, details = code_of(lambda: shared_agent.client.stop_model(name))
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "StopModel needs it RUNNING" in details


@pytest.mark.parametrize(
    "call",
    [
        lambda c, n: c.stub.DescribeModel(pb.DescribeModelRequest(model_component=n)),
        lambda c, n: c.stub.StartModel(pb.StartModelRequest(model_component=n)),
        lambda c, n: c.stub.StopModel(pb.StopModelRequest(model_component=n)),
        lambda c, n: c.stub.DetectAnomalies(detect_request(n, normal_image())),
    ],
    ids=["describe", "start", "stop", "detect"],
)
def test_unknown_model_is_not_found_and_empty_name_is_invalid(shared_agent, call):
    code, details = code_of(lambda: call(shared_agent.client, "no-such-model"))
    assert code == grpc.StatusCode.NOT_FOUND and "no-such-model" in details
    code, details = code_of(lambda: call(shared_agent.client, ""))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "model_component is empty" in details


def test_corrupt_graph_ends_failed_with_reason_and_start_can_retry(shared_agent, packages):
    name = unique("corrupt")
    directory = shared_agent.add_model(name, packages.classification)
    good = (directory / "model.onnx").read_bytes()
    (directory / "model.onnx").write_bytes(good[: len(good) // 2])
    assert (
        shared_agent.client.stub.StartModel(pb.StartModelRequest(model_component=name)).status == pb.STARTING
    )
    state = shared_agent.client.wait_for(name, "FAILED", timeout_s=30)
    assert "corrupt" in state.status_message and "SHA-256" in state.status_message
    (directory / "model.onnx").write_bytes(good)
    assert shared_agent.client.start_model(name, wait=True).status == "RUNNING"


def test_graph_that_is_not_onnx_fails_with_runtime_reason(shared_agent, packages):
    name = unique("garbage")
    directory = shared_agent.add_model(name, packages.classification)
    manifest = json.loads((directory / MANIFEST_NAME).read_text())
    manifest["graph_sha256"] = ""  # no hash: the runtime itself must reject the file
    (directory / MANIFEST_NAME).write_text(json.dumps(manifest))
    (directory / "model.onnx").write_bytes(b"definitely not a protobuf" * 10)
    shared_agent.client.start_model(name)
    state = shared_agent.client.wait_for(name, "FAILED", timeout_s=30)
    assert "ONNX Runtime cannot load" in state.status_message


def test_unsupported_format_version_is_reported_before_and_after_start(shared_agent, packages):
    name = unique("future")
    directory = shared_agent.add_model(name, packages.classification)
    manifest = json.loads((directory / MANIFEST_NAME).read_text())
    manifest["format_version"] = 2
    (directory / MANIFEST_NAME).write_text(json.dumps(manifest))
    listed = shared_agent.client.describe_model(name)
    assert listed.status == "STOPPED" and "format_version is 2" in listed.status_message
    shared_agent.client.start_model(name)
    failed = shared_agent.client.wait_for(name, "FAILED", timeout_s=30)
    assert "format_version is 2" in failed.status_message and "repackage" in failed.status_message


def test_not_enough_memory_is_resource_exhausted_and_leaves_model_stopped(start_agent, packages):
    agent = start_agent("--memory-limit-mb", "1")
    agent.add_model("big", packages.heavy)
    code, details = code_of(lambda: agent.client.start_model("big"))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "not enough memory" in details and "--memory-limit-mb 1" in details
    assert agent.client.describe_model("big").status == "STOPPED"
