"""A gRPC server interceptor that counts every EdgeAgent call's outcome: no edit to the servicer.

It wraps each EdgeAgent method handler once (cached by method), runs it, and reads the status
code the servicer's error wrapper aborts with (status.py), counting before the status is sent. For
DetectAnomalies it also hands the model component, the verdict and the time to `AgentMetrics`,
and an anomalous frame to the frame ring when that is on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from edge_agent.errors import AgentError
from edge_agent.observability.metrics import AgentMetrics, Outcome
from edge_agent.protocol import edge_agent_pb2 as pb

log = logging.getLogger(__name__)
SERVICE_PREFIX = "/AWS.LookoutVision.EdgeAgent/"
DETECT = "DetectAnomalies"


class MetricsInterceptor(grpc.aio.ServerInterceptor):
    def __init__(
        self,
        metrics: AgentMetrics,
        shared_memory_transport: Callable[[], str],
        on_anomaly: Callable[[str, Any, Any], Awaitable[None]] | None = None,  # (name, request, response)
    ) -> None:
        self._metrics = metrics
        self._shm_transport = shared_memory_transport
        self._on_anomaly = on_anomaly
        self._wrapped: dict[str, grpc.RpcMethodHandler] = {}
        self._frames: dict[tuple[str, str], Any] = {}  # label children, resolved once

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        method_path = handler_call_details.method
        wrapped = self._wrapped.get(method_path)
        if wrapped is not None:
            return wrapped
        handler = await continuation(handler_call_details)
        if handler is None or not method_path.startswith(SERVICE_PREFIX) or handler.unary_unary is None:
            return handler
        method = method_path[len(SERVICE_PREFIX) :]
        wrapped = grpc.unary_unary_rpc_method_handler(
            self._wrap(method, handler.unary_unary),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
        self._wrapped[method_path] = wrapped
        return wrapped

    def _wrap(self, method: str, behaviour: Callable[[Any, Any], Awaitable[Any]]) -> Callable[..., Any]:
        requests = self._metrics.requests
        by_code: dict[str, Any] = {}

        def count(code: str) -> None:
            child = by_code.get(code)
            if child is None:
                child = by_code[code] = requests.labels(method, code)
            child.inc()

        if method != DETECT:

            async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
                hooked = _AbortHook(context, count)
                try:
                    response = await behaviour(request, hooked)
                except BaseException:
                    hooked.count_once(_code_name(context))
                    raise
                count("OK")
                return response

            return call

        async def detect(request: Any, context: grpc.aio.ServicerContext) -> Any:
            started = time.perf_counter()

            def failed(code: str) -> None:
                count(code)
                self._record(request, Outcome(code))

            hooked = _AbortHook(context, failed)
            try:
                response = await behaviour(request, hooked)
            except BaseException:
                hooked.count_once(_code_name(context))
                raise
            seconds = time.perf_counter() - started
            count("OK")
            anomalous = is_anomalous(response)
            name = self._record(request, Outcome("OK", anomalous, seconds))
            if anomalous and name is not None and self._on_anomaly is not None:
                try:
                    await self._on_anomaly(name, request, response)
                except Exception:
                    log.exception("event=frame_ring_error model=%s", name)
            return response

        return detect

    def _record(self, request: Any, outcome: Outcome) -> str | None:
        """Count against the model component if the agent knows it (unknown names would let any
        client create series without bound); returns the name counted, or None."""
        name = getattr(request, "model_component", None)
        if not name:
            return None
        try:
            self._metrics.record_detection(name, outcome)
        except AgentError:  # no such model component
            return None
        bitmap = request.bitmap
        transport = "inline" if bitmap.WhichOneof("data") != "shared_memory_handle" else self._shm_transport()
        child = self._frames.get((name, transport))
        if child is None:
            child = self._frames[(name, transport)] = self._metrics.frames.labels(name, transport)
        child.inc()
        return name


def is_anomalous(response: Any) -> bool:
    """`is_anomalous` of a DetectAnomaliesResponse, also when the servicer answers with its bytes
    (wire.encode_detection): those start with the result's key and length, then field 1
    (is_anomalous, key 0x08) if it is true, as protobuf writes fields in order. Reads a few bytes,
    never the mask."""
    if not isinstance(response, (bytes, bytearray, memoryview)):
        return bool(response.detect_anomaly_result.is_anomalous)
    head = bytes(response[:12])
    if not head:
        return False  # an empty result: is_anomalous is false
    if head[0] != 0x0A:  # not the layout above: parse it all (never seen from this agent)
        return bool(pb.DetectAnomaliesResponse.FromString(bytes(response)).detect_anomaly_result.is_anomalous)
    i = 1
    while i < len(head) and head[i] & 0x80:  # the result's length
        i += 1
    i += 1
    return i + 1 < len(head) and head[i] == 0x08 and head[i + 1] != 0


class _AbortHook:
    """The servicer context, but `abort` counts the call first: grpc.aio sends the status to the
    client inside `abort`, so counting after it would let a client see its error before the counter
    moved. Everything else is the real context."""

    def __init__(self, context: grpc.aio.ServicerContext, on_failure: Callable[[str], None]) -> None:
        self._context = context
        self._on_failure = on_failure
        self._counted = False

    def count_once(self, code: str) -> None:
        if not self._counted:
            self._counted = True
            self._on_failure(code)

    async def abort(self, code: grpc.StatusCode, details: str = "", trailing_metadata: Any = ()) -> None:
        self.count_once(code.name)
        await self._context.abort(code, details, trailing_metadata)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)


def _code_name(context: grpc.aio.ServicerContext) -> str:
    """The code the call ended with; a handler that raised without aborting ends UNKNOWN."""
    code = context.code()
    if code is None:
        return "UNKNOWN"
    if isinstance(code, grpc.StatusCode):
        return code.name
    for status in grpc.StatusCode:
        if status.value[0] == code:
            return status.name
    return "UNKNOWN"
