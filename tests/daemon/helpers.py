"""Small helpers for daemon tests: images, raw requests, status codes."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import grpc
import numpy as np
import pytest

from edge_agent.protocol import edge_agent_pb2 as pb

WIDTH, HEIGHT = 128, 96
_names = itertools.count()


def unique(prefix: str) -> str:
    return f"{prefix}-{next(_names)}"


def normal_image(width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    return np.full((height, width, 3), 100, np.uint8)


def anomalous_image(width: int = WIDTH, height: int = HEIGHT, dark: bool = True) -> np.ndarray:
    """A bright square (>= 1% of the image) and optionally a dark one."""
    image = normal_image(width, height)
    image[10:30, 10:40] = 255
    if dark:
        image[60:70, 80:100] = 0
    return image


def code_of(call: Callable[[], Any]) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value.code(), info.value.details()


def detect_request(name: str, image: np.ndarray, **bitmap_fields: Any) -> pb.DetectAnomaliesRequest:
    height, width = image.shape[:2]
    bitmap = pb.Bitmap(width=width, height=height, **bitmap_fields)
    if "shared_memory_handle" not in bitmap_fields and "byte_data" not in bitmap_fields:
        bitmap.byte_data = image.tobytes()
    return pb.DetectAnomaliesRequest(model_component=name, bitmap=bitmap)


def legacy_mask_params(handle: pb.SharedMemoryHandle) -> pb.AnomalyMaskParams:
    """AnomalyMaskParams as the legacy C++ variant encodes it: the handle at field 3."""
    payload = handle.SerializeToString()
    raw = bytes([(3 << 3) | 2]) + _varint(len(payload)) + payload
    params = pb.AnomalyMaskParams.FromString(raw)
    assert not params.HasField("shared_memory_handle")
    return params


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)
