"""DetectAnomalies results and input validation, on a real agent, compared with the in-process Predictor."""

from __future__ import annotations

import grpc
import numpy as np
import pytest

from edge_agent.client import SharedMemoryBuffer, detection_from_proto
from edge_agent.inference import Predictor
from edge_agent.protocol import edge_agent_pb2 as pb
from tests.daemon.helpers import (
    HEIGHT,
    WIDTH,
    anomalous_image,
    code_of,
    detect_request,
    legacy_mask_params,
    normal_image,
)

pytestmark = pytest.mark.timeout(120)
SIZE = WIDTH * HEIGHT * 3


@pytest.fixture(scope="module")
def running(shared_agent, packages):
    for name, package in (("cls", packages.classification), ("seg", packages.segmentation)):
        shared_agent.add_model(name, package)
        shared_agent.client.start_model(name, wait=True)
    return shared_agent


@pytest.fixture(scope="module")
def predictors(packages):
    return {"cls": Predictor.open(packages.classification), "seg": Predictor.open(packages.segmentation)}


@pytest.mark.parametrize("model", ["cls", "seg"])
@pytest.mark.parametrize("make_image", [normal_image, anomalous_image])
def test_agent_result_equals_in_process_prediction(running, predictors, model, make_image):
    image = make_image()
    served = running.client.detect(model, image)
    local = predictors[model].predict(image)
    assert served.is_anomalous == local.is_anomalous
    assert served.anomaly_score == pytest.approx(local.anomaly_score, abs=1e-6)
    assert served.confidence == pytest.approx(local.confidence, abs=1e-6)
    assert served.anomaly_threshold == pytest.approx(0.5)
    assert served.is_anomalous == (np.float32(served.anomaly_score) >= np.float32(served.anomaly_threshold))
    assert 0.5 <= served.confidence <= 1.0 and 0.0 <= served.anomaly_score <= 1.0
    assert [(a.name, a.hex_color) for a in served.anomalies] == [
        (a.name, a.hex_color) for a in local.anomalies
    ]
    assert [a.area for a in served.anomalies] == pytest.approx([a.area for a in local.anomalies], abs=1e-6)
    if model == "seg":
        assert np.array_equal(served.mask, local.mask)
    else:
        assert served.mask is None and served.anomalies == ()


def test_segmentation_lists_background_first_then_each_label_present(running):
    result = running.client.detect("seg", anomalous_image())
    names = [a.name for a in result.anomalies]
    assert names == ["background", "bright", "dark"]
    assert [a.hex_color for a in result.anomalies] == ["#000000", "#F5A623", "#4A90E2"]
    bright_area = 20 * 30 / (WIDTH * HEIGHT)
    assert result.anomalies[1].area == pytest.approx(bright_area, rel=1e-5)
    assert sum(a.area for a in result.anomalies) == pytest.approx(1.0, abs=1e-5)
    only_bright = running.client.detect("seg", anomalous_image(dark=False))
    assert [a.name for a in only_bright.anomalies] == ["background", "bright"]
    assert [a.name for a in running.client.detect("seg", normal_image()).anomalies] == ["background"]


@pytest.mark.parametrize("legacy", [False, True], ids=["field-2", "legacy-field-3"])
def test_mask_is_written_into_the_clients_segment(running, predictors, legacy):
    image = anomalous_image()
    offset = 4096
    with SharedMemoryBuffer.create(offset + SIZE + 100) as mask_shm:
        mask_shm.write(b"\x07" * (offset + SIZE + 100))
        handle = pb.SharedMemoryHandle(name=mask_shm.name, size=SIZE, offset=offset)
        request = detect_request("seg", image)
        if legacy:
            request.anomaly_mask_params.CopyFrom(legacy_mask_params(handle))
        else:
            request.anomaly_mask_params.shared_memory_handle.CopyFrom(handle)
        result = running.client.stub.DetectAnomalies(request).detect_anomaly_result
        assert result.anomaly_mask.WhichOneof("data") == "shared_memory_handle"
        assert (result.anomaly_mask.width, result.anomaly_mask.height) == (WIDTH, HEIGHT)
        assert result.anomaly_mask.shared_memory_handle.offset == offset
        written = np.frombuffer(mask_shm.read(SIZE, offset), np.uint8).reshape(HEIGHT, WIDTH, 3)
        assert np.array_equal(written, predictors["seg"].predict(image).mask)
        assert mask_shm.read(offset) == b"\x07" * offset  # nothing before the range
        assert mask_shm.read(100, offset + SIZE) == b"\x07" * 100  # nothing after it
        assert detection_from_proto(result, mask_shm).anomalies[1].name == "bright"


def test_classification_model_ignores_mask_params_and_leaves_segment_alone(running):
    with SharedMemoryBuffer.create(SIZE) as mask_shm:
        result = running.client.detect("cls", anomalous_image(), mask_shm=mask_shm)
        assert result.is_anomalous and result.mask is None
        assert mask_shm.read(SIZE) == bytes(SIZE)


def test_mask_segment_too_small_is_invalid_argument(running):
    with SharedMemoryBuffer.create(SIZE - 1) as small:
        request = detect_request("seg", anomalous_image())
        request.anomaly_mask_params.shared_memory_handle.CopyFrom(small.handle(SIZE))
        code, details = code_of(lambda: running.client.stub.DetectAnomalies(request))
        assert code == grpc.StatusCode.INVALID_ARGUMENT and f"holds {SIZE - 1} bytes" in details
        request.anomaly_mask_params.shared_memory_handle.size = SIZE - 3
        code, details = code_of(lambda: running.client.stub.DetectAnomalies(request))
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "needs" in details


def _bitmap(**fields):
    return pb.Bitmap(**fields)


INVALID = {
    "no-bitmap": (pb.DetectAnomaliesRequest(model_component="cls"), "bitmap is missing"),
    "no-pixels": (
        pb.DetectAnomaliesRequest(model_component="cls", bitmap=_bitmap(width=WIDTH, height=HEIGHT)),
        "set byte_data or shared_memory_handle",
    ),
    "too-small": (detect_request("cls", normal_image(63, 64)), "bitmap.width is 63"),
    "too-large": (
        pb.DetectAnomaliesRequest(
            model_component="cls", bitmap=_bitmap(width=4097, height=64, byte_data=b"")
        ),
        "bitmap.width is 4097",
    ),
    "negative": (
        pb.DetectAnomaliesRequest(model_component="cls", bitmap=_bitmap(width=128, height=-5, byte_data=b"")),
        "bitmap.height is -5",
    ),
    "short-bytes": (
        pb.DetectAnomaliesRequest(
            model_component="cls", bitmap=_bitmap(width=WIDTH, height=HEIGHT, byte_data=b"\0" * (SIZE - 1))
        ),
        f"needs width*height*3 = {SIZE}",
    ),
    "wrong-size-for-model": (detect_request("cls", normal_image(96, 128)), "takes 128x96"),
    "shm-size-mismatch": (
        detect_request("cls", normal_image(), shared_memory_handle=pb.SharedMemoryHandle(name="/x", size=5)),
        "shared_memory_handle.size is 5",
    ),
    "shm-empty-name": (
        detect_request(
            "cls", normal_image(), shared_memory_handle=pb.SharedMemoryHandle(name="/", size=SIZE)
        ),
        "name is empty",
    ),
    "shm-path-name": (
        detect_request(
            "cls",
            normal_image(),
            shared_memory_handle=pb.SharedMemoryHandle(name="../../etc/passwd", size=SIZE),
        ),
        "not a POSIX shared memory name",
    ),
    "shm-missing": (
        detect_request(
            "cls",
            normal_image(),
            shared_memory_handle=pb.SharedMemoryHandle(name="/edge-agent-nope", size=SIZE),
        ),
        "no shared memory segment named 'edge-agent-nope'",
    ),
    "shm-offset-overflow": (
        detect_request(
            "cls",
            normal_image(),
            shared_memory_handle=pb.SharedMemoryHandle(name="/x", size=SIZE, offset=2**64 - 1),
        ),
        "overflows",
    ),
}


@pytest.mark.parametrize("case", sorted(INVALID))
def test_bad_input_is_invalid_argument_with_a_message_that_says_what_to_fix(running, case):
    request, expected = INVALID[case]
    code, details = code_of(lambda: running.client.stub.DetectAnomalies(request))
    assert code == grpc.StatusCode.INVALID_ARGUMENT, details
    assert expected in details
    assert running.client.detect("cls", anomalous_image()).is_anomalous  # the agent still serves


def test_shm_offset_past_the_end_of_the_segment(running):
    with SharedMemoryBuffer.create(SIZE) as shm:
        shm.write(normal_image())
        request = detect_request("cls", normal_image(), shared_memory_handle=shm.handle(SIZE, offset=1))
        code, details = code_of(lambda: running.client.stub.DetectAnomalies(request))
        assert code == grpc.StatusCode.INVALID_ARGUMENT
        assert f"holds {SIZE} bytes but offset 1 + size {SIZE}" in details


def test_long_names_are_refused_briefly_with_the_right_code(running):
    long_name = "m" * 20000
    code, details = code_of(
        lambda: running.client.stub.DescribeModel(pb.DescribeModelRequest(model_component=long_name))
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "20000 characters long" in details
    request = detect_request(
        "cls", normal_image(), shared_memory_handle=pb.SharedMemoryHandle(name="/" + "s" * 20000, size=SIZE)
    )
    code, details = code_of(lambda: running.client.stub.DetectAnomalies(request))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and len(details) < 400
    log = running.log()
    assert "m" * 200 not in log and "s" * 200 not in log


def test_a_name_with_a_newline_cannot_forge_log_lines(running):
    name = "x\nevent=model_running model=forged"
    code, _ = code_of(lambda: running.client.describe_model(name))
    assert code == grpc.StatusCode.NOT_FOUND
    assert "\nevent=model_running model=forged" not in running.log()


def test_posix_semaphores_are_not_segments(running):
    request = detect_request("seg", anomalous_image())
    request.anomaly_mask_params.shared_memory_handle.CopyFrom(
        pb.SharedMemoryHandle(name="/sem.lock", size=SIZE)
    )
    code, details = code_of(lambda: running.client.stub.DetectAnomalies(request))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "semaphore" in details
