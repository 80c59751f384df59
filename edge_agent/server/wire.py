"""Proto messages <-> domain values. Every request check lives here.

A decoded request cannot exist invalid: dimensions in range, exactly one pixel source of the right
length, shared-memory names and ranges checked. Nothing downstream re-validates these.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from google.protobuf.message import DecodeError
from google.protobuf.unknown_fields import UnknownFieldSet

from edge_agent.errors import InvalidInputError
from edge_agent.imaging.shm import SegmentRef, check_range, segment_name
from edge_agent.inference import Detection
from edge_agent.model_package import MAX_SIDE_PX, MIN_SIDE_PX
from edge_agent.protocol import edge_agent_pb2 as pb
from edge_agent.registry import ModelInfo

# Some deployed C++ clients were generated from a proto that numbers
# AnomalyMaskParams.shared_memory_handle 3 instead of 2.
LEGACY_MASK_HANDLE_FIELD = 3
MAX_COMPONENT_NAME = 128  # Greengrass ComponentName: 1..128 characters
_LENGTH_DELIMITED = 2


@dataclass(frozen=True)
class InlinePixels:
    data: bytes


@dataclass(frozen=True)
class DetectCall:
    model_component: str
    width: int
    height: int
    pixels: InlinePixels | SegmentRef
    mask_target: SegmentRef | None

    @property
    def image_bytes(self) -> int:
        return self.width * self.height * 3


def model_name(
    request: pb.DescribeModelRequest | pb.StartModelRequest | pb.StopModelRequest | pb.DetectAnomaliesRequest,
) -> str:
    name = request.model_component
    if not name:
        raise InvalidInputError("model_component is empty: set it to the model's Greengrass component name")
    if len(name) > MAX_COMPONENT_NAME:
        raise InvalidInputError(
            f"model_component is {len(name)} characters long; Greengrass component names have at most "
            f"{MAX_COMPONENT_NAME}"
        )
    return name


def decode_detect(request: pb.DetectAnomaliesRequest) -> DetectCall:
    name = model_name(request)
    if not request.HasField("bitmap"):
        raise InvalidInputError("bitmap is missing: send the image as a Bitmap (RGB888)")
    bitmap = request.bitmap
    width, height = bitmap.width, bitmap.height
    for side, value in (("width", width), ("height", height)):
        if not MIN_SIDE_PX <= value <= MAX_SIDE_PX:
            raise InvalidInputError(
                f"bitmap.{side} is {value}; the agent accepts {MIN_SIDE_PX}..{MAX_SIDE_PX} pixels"
            )
    expected = width * height * 3
    source = bitmap.WhichOneof("data")
    pixels: InlinePixels | SegmentRef
    if source == "byte_data":
        data = bitmap.byte_data  # a copy of the field's bytes on every access: take it once
        if len(data) != expected:
            raise InvalidInputError(
                f"bitmap.byte_data holds {len(data)} bytes; a {width}x{height} RGB888 "
                f"image needs width*height*3 = {expected}"
            )
        pixels = InlinePixels(data)
    elif source == "shared_memory_handle":
        pixels = decode_segment(bitmap.shared_memory_handle, "bitmap.shared_memory_handle")
        if pixels.size != expected:
            raise InvalidInputError(
                f"bitmap.shared_memory_handle.size is {pixels.size}; a {width}x{height} RGB888 image "
                f"needs width*height*3 = {expected}"
            )
    else:
        raise InvalidInputError("bitmap has no pixels: set byte_data or shared_memory_handle")
    mask_target = None
    if request.HasField("anomaly_mask_params"):
        handle = mask_handle(request.anomaly_mask_params)
        if handle is not None:
            field = "anomaly_mask_params.shared_memory_handle"
            mask_target = decode_segment(handle, field)
            if mask_target.size < expected:
                raise InvalidInputError(
                    f"{field}.size is {mask_target.size}; the {width}x{height} RGB mask needs {expected} bytes"
                )
    return DetectCall(name, width, height, pixels, mask_target)


def mask_handle(params: pb.AnomalyMaskParams) -> pb.SharedMemoryHandle | None:
    """The mask handle from field 2, or from legacy field 3 kept among the unknown fields."""
    if params.HasField("shared_memory_handle"):
        return params.shared_memory_handle
    for item in UnknownFieldSet(params):
        if item.field_number == LEGACY_MASK_HANDLE_FIELD and item.wire_type == _LENGTH_DELIMITED:
            try:
                return pb.SharedMemoryHandle.FromString(item.data)
            except DecodeError:
                raise InvalidInputError(
                    "anomaly_mask_params field 3 (legacy shared_memory_handle) is not a SharedMemoryHandle"
                ) from None
    return None


def decode_segment(handle: pb.SharedMemoryHandle, field: str) -> SegmentRef:
    ref = SegmentRef(segment_name(handle.name, field), handle.size, handle.offset)
    check_range(ref, field)
    return ref


def inline_array(call: DetectCall, pixels: InlinePixels) -> np.ndarray:
    """Inline pixels as a zero-copy, read-only uint8 [H, W, 3] view of the request's bytes."""
    return np.frombuffer(pixels.data, dtype=np.uint8).reshape(call.height, call.width, 3)


def encode_detection(
    call: DetectCall, detection: Detection, mask_handle_out: pb.SharedMemoryHandle | None
) -> bytes:
    """The serialized DetectAnomaliesResponse, byte for byte what protobuf would write for it.

    An inline mask (1.3 MB at 768x576) is copied once, from the runtime's output straight into the
    message bytes. Through protobuf's Python objects it would be copied three times (to bytes, into
    the field, into the serialization): 2.3 ms more a call on the trained cookies model. Serialized
    messages concatenate as a merge, so the result is written in field order from three parts:
    fields 1-2, the mask (field 3, a Bitmap), fields 4-6.
    """
    head = pb.DetectAnomalyResult(is_anomalous=detection.is_anomalous, confidence=detection.confidence)
    tail = pb.DetectAnomalyResult(
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
    parts = [head.SerializeToString()]
    if detection.mask is not None:
        bitmap = pb.Bitmap(width=call.width, height=call.height)
        if mask_handle_out is not None:
            bitmap.shared_memory_handle.CopyFrom(mask_handle_out)
            parts += [_field_header(_RESULT_MASK, bitmap.ByteSize()), bitmap.SerializeToString()]
        else:
            pixels = memoryview(np.ascontiguousarray(detection.mask, dtype=np.uint8)).cast("B")
            sides = bitmap.SerializeToString() + _field_header(_BITMAP_BYTES, len(pixels))
            parts += [_field_header(_RESULT_MASK, len(sides) + len(pixels)), sides, pixels]
    parts.append(tail.SerializeToString())
    result_size = sum(len(part) for part in parts)
    return b"".join([_field_header(_RESPONSE_RESULT, result_size), *parts])


# Field numbers of the proto, for the parts encode_detection writes itself.
_RESPONSE_RESULT = 1  # DetectAnomaliesResponse.detect_anomaly_result
_RESULT_MASK = 3  # DetectAnomalyResult.anomaly_mask
_BITMAP_BYTES = 3  # Bitmap.byte_data


def _field_header(number: int, size: int) -> bytes:
    """Key and length of a length-delimited field."""
    return _varint((number << 3) | _LENGTH_DELIMITED) + _varint(size)


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def encode_info(info: ModelInfo, message_type: type) -> object:
    return message_type(
        model_component=info.name,
        lookout_vision_model_arn=info.arn,
        status=info.status,
        status_message=info.status_message,
    )
