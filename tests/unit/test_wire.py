from __future__ import annotations

import pytest

from edge_agent.errors import InvalidInputError
from edge_agent.imaging.shm import SegmentRef
from edge_agent.protocol import edge_agent_pb2 as pb
from edge_agent.server.wire import InlinePixels, decode_detect, mask_handle
from tests.daemon.helpers import legacy_mask_params

SIZE = 64 * 64 * 3


def request(**bitmap) -> pb.DetectAnomaliesRequest:
    return pb.DetectAnomaliesRequest(model_component="m", bitmap=pb.Bitmap(width=64, height=64, **bitmap))


def test_inline_request_decodes_to_pixels_of_the_right_length():
    call = decode_detect(request(byte_data=bytes(SIZE)))
    assert isinstance(call.pixels, InlinePixels) and call.mask_target is None
    assert (call.model_component, call.width, call.height) == ("m", 64, 64)


def test_shared_memory_name_loses_its_leading_slash():
    call = decode_detect(
        request(shared_memory_handle=pb.SharedMemoryHandle(name="/cam0", size=SIZE, offset=9))
    )
    assert call.pixels == SegmentRef("cam0", SIZE, 9)


def test_mask_handle_from_field_2_wins_over_legacy_field_3():
    legacy = legacy_mask_params(pb.SharedMemoryHandle(name="/old", size=SIZE))
    assert mask_handle(legacy).name == "/old"
    legacy.shared_memory_handle.CopyFrom(pb.SharedMemoryHandle(name="/new", size=SIZE))
    assert mask_handle(legacy).name == "/new"


def test_legacy_field_3_reaches_the_decoded_call():
    r = request(byte_data=bytes(SIZE))
    r.anomaly_mask_params.CopyFrom(
        legacy_mask_params(pb.SharedMemoryHandle(name="/mask", size=SIZE, offset=3))
    )
    assert decode_detect(r).mask_target == SegmentRef("mask", SIZE, 3)


def test_garbage_in_legacy_field_3_is_invalid_argument():
    params = pb.AnomalyMaskParams.FromString(bytes([0x1A, 2, 0xFF, 0xFF]))
    with pytest.raises(InvalidInputError, match="field 3"):
        mask_handle(params)


@pytest.mark.parametrize(
    ("bitmap", "message"),
    [
        ({"byte_data": bytes(SIZE + 3)}, "holds 12291 bytes"),
        (
            {"shared_memory_handle": pb.SharedMemoryHandle(name="a/b", size=SIZE)},
            "not a POSIX shared memory name",
        ),
        ({"shared_memory_handle": pb.SharedMemoryHandle(name="a", size=SIZE, offset=2**63)}, "overflows"),
        ({}, "no pixels"),
    ],
)
def test_invalid_bitmaps_are_refused_with_the_field_named(bitmap, message):
    with pytest.raises(InvalidInputError, match=message):
        decode_detect(request(**bitmap))


def test_mask_handle_smaller_than_the_image_is_refused():
    r = request(byte_data=bytes(SIZE))
    r.anomaly_mask_params.shared_memory_handle.CopyFrom(pb.SharedMemoryHandle(name="m", size=SIZE - 1))
    with pytest.raises(InvalidInputError, match=r"anomaly_mask_params\.shared_memory_handle\.size"):
        decode_detect(r)
