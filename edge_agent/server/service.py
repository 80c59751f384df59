"""The EdgeAgent servicer: decode the request, call the registry, encode the response. No state."""

from __future__ import annotations

import logging
import threading

import grpc
import numpy as np

from edge_agent.errors import OverloadedError
from edge_agent.imaging.shm import SegmentCache, SegmentRef
from edge_agent.inference import Detection
from edge_agent.protocol import edge_agent_pb2 as pb
from edge_agent.protocol import edge_agent_pb2_grpc as pb_grpc
from edge_agent.registry import ModelRegistry, Slot
from edge_agent.server import wire
from edge_agent.server.status import rpc

log = logging.getLogger(__name__)


class EdgeAgentService(pb_grpc.EdgeAgentServicer):
    def __init__(self, registry: ModelRegistry, segments: SegmentCache, max_detect_calls: int) -> None:
        self.registry = registry
        self.segments = segments
        self.max_detect_calls = max_detect_calls
        # Detect calls may not take every server thread: List/Describe/Start/Stop stay answerable.
        self._detect_calls = threading.BoundedSemaphore(max_detect_calls)

    @rpc
    def DetectAnomalies(
        self, request: pb.DetectAnomaliesRequest, context: grpc.ServicerContext
    ) -> pb.DetectAnomaliesResponse:
        call = wire.decode_detect(request)
        if not self._detect_calls.acquire(blocking=False):
            raise OverloadedError(
                f"the agent is already handling {self.max_detect_calls} DetectAnomalies calls: retry later"
            )
        try:
            with self.registry.inference(call.model_component, call.width, call.height) as slot:
                detection = slot.predictor.predict(self._pixels(call, slot))
            handle_out = self._write_mask(call, request, detection)
        finally:
            self._detect_calls.release()
        log.debug(
            "event=detected model=%s anomalous=%s score=%.4f",
            call.model_component,
            detection.is_anomalous,
            detection.anomaly_score,
        )
        return wire.encode_detection(call, detection, handle_out)

    def _pixels(self, call: wire.DetectCall, slot: Slot) -> np.ndarray:
        if isinstance(call.pixels, wire.InlinePixels):
            return wire.inline_array(call, call.pixels)
        self.segments.read_into(call.pixels, memoryview(slot.buffer), "bitmap.shared_memory_handle")
        return slot.buffer.reshape(call.height, call.width, 3)

    def _write_mask(
        self, call: wire.DetectCall, request: pb.DetectAnomaliesRequest, detection: Detection
    ) -> pb.SharedMemoryHandle | None:
        """Write the mask into the client's segment when it asked for that; echo its handle."""
        target: SegmentRef | None = call.mask_target
        if target is None or detection.mask is None:
            return None
        mask = np.ascontiguousarray(detection.mask, dtype=np.uint8)
        self.segments.write(target, memoryview(mask).cast("B"), "anomaly_mask_params.shared_memory_handle")
        return wire.mask_handle(request.anomaly_mask_params)

    @rpc
    def DescribeModel(
        self, request: pb.DescribeModelRequest, context: grpc.ServicerContext
    ) -> pb.DescribeModelResponse:
        name = wire.model_name(request)
        self.registry.sync()
        info = self.registry.describe(name)
        return pb.DescribeModelResponse(model_description=wire.encode_info(info, pb.ModelDescription))

    @rpc
    def ListModels(
        self, request: pb.ListModelsRequest, context: grpc.ServicerContext
    ) -> pb.ListModelsResponse:
        self.registry.sync()
        return pb.ListModelsResponse(
            models=[wire.encode_info(info, pb.ModelMetadata) for info in self.registry.list()]
        )

    @rpc
    def StartModel(
        self, request: pb.StartModelRequest, context: grpc.ServicerContext
    ) -> pb.StartModelResponse:
        name = wire.model_name(request)
        self.registry.sync()
        return pb.StartModelResponse(status=self.registry.start(name))

    @rpc
    def StopModel(self, request: pb.StopModelRequest, context: grpc.ServicerContext) -> pb.StopModelResponse:
        return pb.StopModelResponse(status=self.registry.stop(wire.model_name(request)))
