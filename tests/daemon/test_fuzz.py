"""Fuzz property: every input ends in a defined status code and the agent stays up, without leaks."""

from __future__ import annotations

import os

import grpc
import pytest
from google.protobuf.message import DecodeError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_agent.client import SharedMemoryBuffer
from edge_agent.protocol import edge_agent_pb2 as pb
from tests.daemon.helpers import HEIGHT, WIDTH, normal_image

pytestmark = pytest.mark.timeout(300)
SIZE = WIDTH * HEIGHT * 3
DEFINED = {"OK", "INVALID_ARGUMENT", "NOT_FOUND", "FAILED_PRECONDITION", "RESOURCE_EXHAUSTED"}
SETTINGS = settings(
    max_examples=300, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True
)


@pytest.fixture(scope="module")
def target(shared_agent, packages):
    shared_agent.add_model("fz-cls", packages.classification)
    shared_agent.add_model("fz-seg", packages.segmentation)
    shared_agent.add_model("fz-stopped", packages.classification)
    shared_agent.client.start_model("fz-cls", wait=True)
    shared_agent.client.start_model("fz-seg", wait=True)
    shm = SharedMemoryBuffer.create(2 * SIZE)
    shm.write(normal_image())
    yield shared_agent, shm
    shm.close()


def status_of(call) -> str:
    try:
        call()
        return "OK"
    except grpc.RpcError as exc:
        return exc.code().name


def segment_names(shm_name: str):
    return st.sampled_from(
        [shm_name, shm_name.lstrip("/"), "", "/", "//x", "../x", "a/b", "\x00", "nope", "x" * 300]
    )


@st.composite
def handles(draw, shm_name: str):
    return pb.SharedMemoryHandle(
        name=draw(st.one_of(segment_names(shm_name), st.text(max_size=20))),
        size=draw(
            st.one_of(st.sampled_from([0, SIZE, SIZE - 1, SIZE + 1, 2**64 - 1]), st.integers(0, 2**64 - 1))
        ),
        offset=draw(st.one_of(st.sampled_from([0, 1, SIZE, 2 * SIZE, 2**63]), st.integers(0, 2**64 - 1))),
    )


@st.composite
def requests(draw, shm_name: str):
    request = pb.DetectAnomaliesRequest(
        model_component=draw(st.sampled_from(["fz-cls", "fz-seg", "fz-stopped", "", "missing", "fz-cls\x00"]))
    )
    if draw(st.booleans()):
        width = draw(
            st.one_of(st.sampled_from([WIDTH, 0, 63, 64, 4096, 4097, -1]), st.integers(-(2**31), 2**31 - 1))
        )
        height = draw(st.one_of(st.sampled_from([HEIGHT, 0, 64, 4097, -1]), st.integers(-(2**31), 2**31 - 1)))
        request.bitmap.width, request.bitmap.height = width, height
        source = draw(st.sampled_from(["bytes", "shm", "none"]))
        if source == "bytes":
            length = draw(st.sampled_from([0, 1, SIZE - 1, SIZE, SIZE + 1]))
            request.bitmap.byte_data = os.urandom(length)
        elif source == "shm":
            request.bitmap.shared_memory_handle.CopyFrom(draw(handles(shm_name)))
    mask = draw(st.sampled_from(["none", "empty", "handle"]))
    if mask == "empty":
        request.anomaly_mask_params.SetInParent()
    elif mask == "handle":
        request.anomaly_mask_params.shared_memory_handle.CopyFrom(draw(handles(shm_name)))
    return request


@st.composite
def near_valid_requests(draw, shm_name: str):
    """A valid request with at most one field broken: reaches the code paths past validation."""
    request = pb.DetectAnomaliesRequest(
        model_component=draw(st.sampled_from(["fz-cls", "fz-seg", "fz-stopped", "missing"]))
    )
    request.bitmap.width, request.bitmap.height = WIDTH, HEIGHT
    if draw(st.booleans()):
        request.bitmap.byte_data = os.urandom(SIZE)
    else:
        request.bitmap.shared_memory_handle.CopyFrom(pb.SharedMemoryHandle(name=shm_name, size=SIZE))
    if draw(st.booleans()):
        request.anomaly_mask_params.shared_memory_handle.CopyFrom(
            pb.SharedMemoryHandle(name=shm_name, size=SIZE, offset=SIZE)
        )
    broken = draw(st.sampled_from(["none", "width", "mask_offset", "shm_offset"]))
    if broken == "width":
        request.bitmap.width = draw(st.integers(64, 4096))
    elif broken == "mask_offset" and request.HasField("anomaly_mask_params"):
        request.anomaly_mask_params.shared_memory_handle.offset = draw(st.integers(0, 4 * SIZE))
    elif broken == "shm_offset" and request.bitmap.HasField("shared_memory_handle"):
        request.bitmap.shared_memory_handle.offset = draw(st.integers(0, 2 * SIZE))
    return request


def test_random_detect_requests_end_in_defined_codes(target):
    agent, shm = target
    fds_before = agent.open_fds()
    seen: dict[str, int] = {}

    @SETTINGS
    @given(request=st.one_of(requests(shm.name), near_valid_requests(shm.name)))
    def check(request):
        code = status_of(lambda: agent.client.stub.DetectAnomalies(request, timeout=30))
        seen[code] = seen.get(code, 0) + 1
        assert code in DEFINED, (code, request)

    check()
    assert agent.proc.poll() is None, agent.log()
    assert {"OK", "INVALID_ARGUMENT", "NOT_FOUND", "FAILED_PRECONDITION"} <= set(seen), seen
    assert agent.open_fds() <= fds_before + 8
    assert "event=internal_error" not in agent.log()


CONTROL_MODELS = ["fz-ctl-a", "fz-ctl-b"]  # only the control fuzz starts and stops these


def _unknown_field(number: int, payload: bytes) -> bytes:
    """A length-delimited field the messages do not define (kept as an unknown field)."""
    key, length = (number << 3) | 2, len(payload)
    out = bytearray()
    for value in (key, length):
        while True:
            byte, value = value & 0x7F, value >> 7
            out.append(byte | (0x80 if value else 0))
            if not value:
                break
    return bytes(out) + payload


@st.composite
def control_calls(draw):
    """(method, serialized request): real names, near misses, hostile text, extra unknown fields."""
    method = draw(st.sampled_from(["StartModel", "StopModel", "DescribeModel", "ListModels"]))
    name = draw(
        st.one_of(
            st.sampled_from(
                [*CONTROL_MODELS, "fz-stopped", "", "missing", "fz-ctl-a\x00", "FZ-CTL-A", " fz-ctl-a"]
            ),
            st.text(max_size=40),
            st.sampled_from(["x" * 128, "x" * 129, "\n" * 200, "../" * 50, "\u202e" * 10]),
        )
    )
    request = METHODS[method]() if method == "ListModels" else METHODS[method](model_component=name)
    raw = request.SerializeToString()
    if draw(st.booleans()):
        raw += _unknown_field(draw(st.integers(2, 2000)), draw(st.binary(max_size=64)))
    return method, raw


def test_random_control_requests_end_in_defined_codes(target, packages):
    agent, _ = target
    for name in CONTROL_MODELS:
        agent.add_model(name, packages.classification)
    assert {m.name for m in agent.client.list_models()} >= set(CONTROL_MODELS)
    fds_before = agent.open_fds()
    calls = {
        method: agent.client.channel.unary_unary(
            f"/AWS.LookoutVision.EdgeAgent/{method}", request_serializer=None, response_deserializer=None
        )
        for method in ("StartModel", "StopModel", "DescribeModel", "ListModels")
    }
    seen: dict[tuple[str, str], int] = {}

    @SETTINGS
    @given(call=control_calls())
    def check(call):
        method, raw = call
        code = status_of(lambda: calls[method](raw, timeout=60))
        seen[method, code] = seen.get((method, code), 0) + 1
        assert code in DEFINED, (method, code, raw)
        if method == "ListModels":
            assert code == "OK", raw  # it has no fields to get wrong

    check()
    assert agent.proc.poll() is None, agent.log()
    # Every method was answered both ways, so the fuzz reached past validation.
    for method in ("StartModel", "StopModel", "DescribeModel"):
        assert (method, "OK") in seen and (method, "NOT_FOUND") in seen, seen
    assert ("StartModel", "FAILED_PRECONDITION") in seen or ("StopModel", "FAILED_PRECONDITION") in seen
    # The models the fuzz drove end in a state of the state machine, never FAILED.
    for name in CONTROL_MODELS:
        status = agent.client.describe_model(name).status
        if status == "STARTING":
            status = agent.client.wait_for(name, "RUNNING", 120).status
        assert status in ("RUNNING", "STOPPED"), (name, status)
        if status == "RUNNING":
            agent.client.stop_model(name)
    assert agent.client.describe_model("fz-cls").status == "RUNNING"  # others undisturbed
    assert agent.open_fds() <= fds_before + 8
    assert "event=internal_error" not in agent.log()


METHODS = {
    "DetectAnomalies": pb.DetectAnomaliesRequest,
    "DescribeModel": pb.DescribeModelRequest,
    "ListModels": pb.ListModelsRequest,
    "StartModel": pb.StartModelRequest,
    "StopModel": pb.StopModelRequest,
}


@pytest.mark.parametrize("method", sorted(METHODS))
def test_raw_bytes_to_every_method_leave_the_agent_serving(target, method):
    agent, _ = target
    call = agent.client.channel.unary_unary(
        f"/AWS.LookoutVision.EdgeAgent/{method}",
        request_serializer=None,
        response_deserializer=None,
    )

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(payload=st.binary(max_size=512))
    def check(payload):
        code = status_of(lambda: call(payload, timeout=30))
        try:
            METHODS[method].FromString(payload)
        except DecodeError:
            assert code == "INVALID_ARGUMENT", (code, payload)  # bytes that are not the message
        assert code in DEFINED, (code, payload)

    check()
    assert agent.client.describe_model("fz-cls").status == "RUNNING"
    assert agent.proc.poll() is None
