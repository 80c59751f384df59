"""The EdgeAgent servicer: decode the request, call the registry, encode the response. No state.

The server is asyncio (grpc.aio): request messages are received on the event loop, so a client that
opens calls and never finishes sending them costs memory, not threads. Work that blocks (inference,
file system, StopModel's drain) runs in two bounded thread pools: one for detections, one for
control calls, so ListModels and friends are answered while every detection thread is busy.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TypeVar

import grpc
import numpy as np

from edge_agent.errors import OverloadedError
from edge_agent.imaging.shm import InPlaceReadFailed, SegmentCache, SegmentRef
from edge_agent.inference import Detection
from edge_agent.protocol import edge_agent_pb2 as pb
from edge_agent.protocol import edge_agent_pb2_grpc as pb_grpc
from edge_agent.registry import ModelRegistry, Slot
from edge_agent.server import intake, wire
from edge_agent.server.status import rpc

log = logging.getLogger(__name__)
CONTROL_WORKERS = 4
T = TypeVar("T")


class EdgeAgentService(pb_grpc.EdgeAgentServicer):
    def __init__(
        self,
        registry: ModelRegistry,
        segments: SegmentCache,
        detect_workers: int,
        max_inflight_bytes: int = 256 * intake.MIB,
    ) -> None:
        self.registry = registry
        self.segments = segments
        self.budget = intake.InflightBudget(max_inflight_bytes)
        self.max_detect_calls = detect_workers
        self._detect_pool = ThreadPoolExecutor(detect_workers, thread_name_prefix="detect")
        self._control_pool = ThreadPoolExecutor(CONTROL_WORKERS, thread_name_prefix="control")
        self._detect_calls = 0
        self._count_lock = threading.Lock()

    def close(self) -> None:
        _shutdown_cancelling(self._detect_pool)
        _shutdown_cancelling(self._control_pool)

    async def _control(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._control_pool, fn)

    # DetectAnomalies ----------------------------------------------------------------------------
    @rpc
    async def DetectAnomalies(
        self, request: pb.DetectAnomaliesRequest, context: grpc.aio.ServicerContext
    ) -> bytes:
        with self._count_lock:
            if self._detect_calls >= self.max_detect_calls:
                raise OverloadedError(
                    f"the agent is already handling {self.max_detect_calls} DetectAnomalies calls: retry later"
                )
            self._detect_calls += 1
        try:
            job = self._detect_pool.submit(self._detect, request)
        except BaseException:
            self._release_detect()
            raise
        # Released when the job ends (or is cancelled before it starts), not when the caller gives up.
        job.add_done_callback(lambda _: self._release_detect())
        done = asyncio.wrap_future(job)
        try:
            return await asyncio.shield(done)
        except asyncio.CancelledError:
            # The caller gave up, but the job still reads the request: the call keeps its bytes
            # charged to the in-flight budget until the job ends.
            await asyncio.wait((done,))
            if not done.cancelled():
                done.exception()  # retrieved: an error nobody waits for is not worth a log line
            raise

    def _release_detect(self) -> None:
        with self._count_lock:
            self._detect_calls -= 1

    def _detect(self, request: pb.DetectAnomaliesRequest) -> bytes:
        """Run one detection; the answer is already serialized (wire.encode_detection says why)."""
        call = wire.decode_detect(request)
        try:
            detection = self._predict(call, copy=False)
        except InPlaceReadFailed:
            # The segment kept its size but its pages could not be mapped (a never-written segment
            # on a full /dev/shm): a copy reads them as the zeros they hold, as --copy-frames does.
            detection = self._predict(call, copy=True)
        handle_out = self._write_mask(call, request, detection)
        log.debug(
            "event=detected model=%s anomalous=%s score=%.4f",
            call.model_component,
            detection.is_anomalous,
            detection.anomaly_score,
        )
        return wire.encode_detection(call, detection, handle_out)

    def _predict(self, call: wire.DetectCall, copy: bool) -> Detection:
        admitted = self.registry.inference(call.model_component, call.width, call.height)
        with admitted as slot, self._pixels(call, slot, copy) as image:
            return slot.predictor.predict(image)

    @contextmanager
    def _pixels(self, call: wire.DetectCall, slot: Slot, copy: bool) -> Iterator[np.ndarray]:
        """The frame as uint8 [H, W, 3], valid inside the block (a shared-memory frame may be read in
        place unless `copy`)."""
        if isinstance(call.pixels, wire.InlinePixels):
            yield wire.inline_array(call, call.pixels)
            return
        with self.segments.frame(call.pixels, slot.buffer, "bitmap.shared_memory_handle", copy) as data:
            yield data.reshape(call.height, call.width, 3)

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

    # Control calls ------------------------------------------------------------------------------
    @rpc
    async def DescribeModel(
        self, request: pb.DescribeModelRequest, context: grpc.aio.ServicerContext
    ) -> pb.DescribeModelResponse:
        name = wire.model_name(request)

        def describe() -> pb.DescribeModelResponse:
            self.registry.sync()
            info = self.registry.describe(name)
            return pb.DescribeModelResponse(model_description=wire.encode_info(info, pb.ModelDescription))

        return await self._control(describe)

    @rpc
    async def ListModels(
        self, request: pb.ListModelsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListModelsResponse:
        def list_models() -> pb.ListModelsResponse:
            self.registry.sync()
            return pb.ListModelsResponse(
                models=[wire.encode_info(info, pb.ModelMetadata) for info in self.registry.list()]
            )

        return await self._control(list_models)

    @rpc
    async def StartModel(
        self, request: pb.StartModelRequest, context: grpc.aio.ServicerContext
    ) -> pb.StartModelResponse:
        name = wire.model_name(request)

        def start() -> pb.StartModelResponse:
            self.registry.sync()
            return pb.StartModelResponse(status=self.registry.start(name))

        return await self._control(start)

    @rpc
    async def StopModel(
        self, request: pb.StopModelRequest, context: grpc.aio.ServicerContext
    ) -> pb.StopModelResponse:
        name = wire.model_name(request)
        # A stop waits for requests in progress: it runs on the loop's default executor so that it can
        # never take the threads of List/Describe.
        status = await asyncio.get_running_loop().run_in_executor(None, self.registry.stop, name)
        return pb.StopModelResponse(status=status)


def _shutdown_cancelling(pool: ThreadPoolExecutor) -> None:
    """Cancel jobs not yet started, wait for running ones. Python 3.8 has no `cancel_futures`: there
    queued jobs run, and end at once, because the daemon closes the service after every model stopped."""
    if sys.version_info >= (3, 9):
        pool.shutdown(wait=True, cancel_futures=True)
    else:
        pool.shutdown(wait=True)


def _serializer(message_type: type) -> Callable[[object], bytes]:
    """Messages are serialized by protobuf; handlers that answer with bytes wrote them already."""

    def serialize(response: object) -> bytes:
        if isinstance(response, bytes):
            return response
        return message_type.SerializeToString(response)

    return serialize


def add_to_server(service: EdgeAgentService, server: grpc.aio.Server) -> None:
    """Register like the generated add_EdgeAgentServicer_to_server, but through `intake`: bytes
    beyond the in-flight budget are refused before parsing, and bytes that do not parse reach our
    handler (INVALID_ARGUMENT with a reason) instead of gRPC's generic error."""
    descriptor = pb.DESCRIPTOR.services_by_name["EdgeAgent"]
    handlers = {
        method.name: grpc.unary_unary_rpc_method_handler(
            getattr(service, method.name),
            request_deserializer=intake.deserializer(getattr(pb, method.input_type.name), service.budget),
            response_serializer=_serializer(getattr(pb, method.output_type.name)),
        )
        for method in descriptor.methods
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(descriptor.full_name, handlers),))
