"""Cloud-parity detection: POST a PNG or JPEG, get the cloud DetectAnomalies JSON back.

For tools written against the cloud API (`aws lookoutvision detect-anomalies`): the body is the
raw image and `Content-Type` is `image/png` or `image/jpeg`, as in the cloud request; the model is
named by `?model_component=NAME`, or the cloud way, `?ProjectName=P&ModelVersion=V` (matched against
the labels of the agent's model components, see labels.py). The reply is `{"DetectAnomalyResult":
{"Source": {"Type": "direct"}, "IsAnomalous", "Confidence", "Anomalies", "AnomalyMask"}}`, the mask a
base64 PNG as the cloud's JSON carries it (segmentation models only). Errors are the cloud's
exception names with their HTTP status.

The endpoint is a client of the agent's own gRPC socket: every call goes through the same
admission, limits and counters as any other DetectAnomalies call.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Callable

import grpc
import numpy as np
from PIL import Image

from edge_agent.client import EdgeAgentClient
from edge_agent.observability.http_server import Reply, Request, not_found
from edge_agent.observability.labels import ModelLabels
from edge_agent.protocol import edge_agent_pb2 as pb

MAX_IMAGE_BYTES = 8 * 1024 * 1024  # the cloud's limit for one image file
MIN_SIDE, MAX_SIDE = 64, 4096
CONTENT_TYPES = {"image/png": b"\x89PNG\r\n\x1a\n", "image/jpeg": b"\xff\xd8\xff"}
ERRORS = {
    grpc.StatusCode.INVALID_ARGUMENT: (400, "ValidationException"),
    grpc.StatusCode.NOT_FOUND: (404, "ResourceNotFoundException"),
    grpc.StatusCode.FAILED_PRECONDITION: (409, "ConflictException"),
    grpc.StatusCode.RESOURCE_EXHAUSTED: (429, "ThrottlingException"),
    grpc.StatusCode.UNAVAILABLE: (503, "InternalServerException"),
}


def error(status: int, kind: str, message: str) -> Reply:
    body = json.dumps({"__type": kind, "Message": message}).encode()
    return Reply(status, body, "application/x-amz-json-1.1", {"x-amzn-ErrorType": kind})


def result_json(result: pb.DetectAnomalyResult) -> dict[str, object]:
    """The cloud's DetectAnomalyResult from the agent's."""
    out: dict[str, object] = {
        "Source": {"Type": "direct"},
        "IsAnomalous": result.is_anomalous,
        "Confidence": result.confidence,
    }
    if len(result.anomalies):
        out["Anomalies"] = [
            {
                "Name": a.name,
                "PixelAnomaly": {
                    "TotalPercentageArea": a.pixel_anomaly.total_percentage_area,
                    "Color": a.pixel_anomaly.hex_color,
                },
            }
            for a in result.anomalies
        ]
    if result.HasField("anomaly_mask") and result.anomaly_mask.byte_data:
        mask = result.anomaly_mask
        array = np.frombuffer(mask.byte_data, np.uint8).reshape(mask.height, mask.width, 3)
        png = io.BytesIO()
        Image.fromarray(array, "RGB").save(png, "PNG")
        out["AnomalyMask"] = base64.b64encode(png.getvalue()).decode("ascii")
    return out


class DetectRoutes:
    def __init__(self, socket: str, labels: Callable[[], list[ModelLabels]], timeout_s: float = 60.0) -> None:
        self._labels = labels
        self._timeout_s = timeout_s
        self._client = EdgeAgentClient(socket, timeout_s=timeout_s)  # one channel, shared by the threads

    def close(self) -> None:
        self._client.close()

    def __call__(self, request: Request) -> Reply:
        if request.path not in ("/detect-anomalies", "/DetectAnomalies"):
            return not_found(request.path)
        if request.method != "POST":
            return error(405, "ValidationException", "POST the image to this endpoint")
        name, problem = self._model_component(request)
        if problem:
            return problem
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        magic = CONTENT_TYPES.get(content_type)
        if magic is None:
            return error(
                400, "ValidationException", f"ContentType {content_type!r} is not image/png or image/jpeg"
            )
        if len(request.body) > MAX_IMAGE_BYTES:
            return error(400, "ValidationException", "the image is larger than 8 MB")
        if not request.body.startswith(magic):
            return error(400, "ValidationException", f"the body is not a {content_type} image")
        try:
            image = Image.open(io.BytesIO(request.body))
            width, height = image.size
            if not (MIN_SIDE <= width <= MAX_SIDE and MIN_SIDE <= height <= MAX_SIDE):
                return error(
                    400,
                    "ValidationException",
                    f"the image is {width}x{height}; images are 64..4096 pixels a side",
                )
            pixels = np.asarray(image.convert("RGB"), np.uint8)
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            return error(400, "ValidationException", f"the image cannot be decoded: {exc}")
        bitmap = pb.Bitmap(width=width, height=height, byte_data=pixels.tobytes())
        call = pb.DetectAnomaliesRequest(model_component=name, bitmap=bitmap)
        try:
            response = self._client.stub.DetectAnomalies(call, timeout=self._timeout_s)
        except grpc.RpcError as exc:
            status, kind = ERRORS.get(exc.code(), (500, "InternalServerException"))
            return error(status, kind, exc.details() or exc.code().name)
        body = json.dumps({"DetectAnomalyResult": result_json(response.detect_anomaly_result)}).encode()
        return Reply(200, body, "application/x-amz-json-1.1")

    def _model_component(self, request: Request) -> tuple[str, Reply | None]:
        query = {k: v[0] for k, v in request.query.items()}
        if "model_component" in query:
            return query["model_component"], None
        project, version = query.get("ProjectName"), query.get("ModelVersion")
        if not project or not version:
            return "", error(
                400,
                "ValidationException",
                "name the model: ?model_component=NAME or ?ProjectName=P&ModelVersion=V",
            )
        matches = [
            m.model_component for m in self._labels() if (m.project, m.model_version) == (project, version)
        ]
        if not matches:
            return "", error(
                404,
                "ResourceNotFoundException",
                f"no model component serves project {project!r} version {version!r}",
            )
        if len(matches) > 1:
            return "", error(
                400,
                "ValidationException",
                f"project {project!r} version {version!r} is served by {sorted(matches)}: use ?model_component=",
            )
        return matches[0], None
