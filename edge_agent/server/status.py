"""The one table from domain errors to gRPC status codes, and the wrapper that applies it.

Codes follow the guide's per-RPC table: INVALID_ARGUMENT bad input, NOT_FOUND unknown model,
FAILED_PRECONDITION wrong model state, RESOURCE_EXHAUSTED overload or a shortage on the host (memory,
descriptors, space), INTERNAL for anything unexpected (traceback to the log, a short message with a log
reference to the client).
"""

from __future__ import annotations

import functools
import logging
import traceback
import uuid
from typing import Any, Awaitable, Callable, TypeVar

import grpc

from edge_agent.errors import (
    AgentError,
    InvalidInputError,
    ModelFailedError,
    ModelNotFoundError,
    OverloadedError,
    WrongStateError,
    shortage,
    shown,
)
from edge_agent.server.intake import Received
from edge_agent.server.lograte import RateLimitedLog

log = logging.getLogger(__name__)
# Rejections are caused by clients: at most 10 lines at once and 1 a second per (operation, code).
REJECTIONS = RateLimitedLog(log, burst=10, per_second=1.0, summary_s=10.0)

STATUS_BY_ERROR: dict[type[AgentError], grpc.StatusCode] = {
    InvalidInputError: grpc.StatusCode.INVALID_ARGUMENT,
    ModelNotFoundError: grpc.StatusCode.NOT_FOUND,
    WrongStateError: grpc.StatusCode.FAILED_PRECONDITION,
    OverloadedError: grpc.StatusCode.RESOURCE_EXHAUSTED,
    ModelFailedError: grpc.StatusCode.INTERNAL,
}

Handler = TypeVar("Handler", bound=Callable[..., Awaitable[Any]])


def status_for(error: AgentError) -> grpc.StatusCode:
    for cls in type(error).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]
    return grpc.StatusCode.INTERNAL


def model_of(request: Any) -> str:
    return shown(getattr(request, "model_component", "") or "", 64)


def rpc(handler: Handler) -> Handler:
    """Run an async servicer method; turn errors into an aborted call with the right status code.

    The handler gets the `intake.Received` the deserializer made (it reads as the message), or a
    plain message wrapped in one when called directly. A failed call gives its bytes back before it
    aborts: `context.abort` raises an exception that gRPC keeps on the call's state, whose traceback
    holds the frames of this wrapper and of any interceptor, which hold the call's context, which
    holds that state. That reference cycle is only freed by Python's cyclic collector; it used to
    keep every rejected request's bytes (about 96 MiB per 4096x4096 inline call) until the collector
    happened to run. Now the cycle holds a `Received` whose message is gone. The caught exception's
    traceback and the locals of the frames it passed through (the decoded frame among them) are
    dropped too.
    """
    op = handler.__name__

    @functools.wraps(handler)
    async def wrapper(self: Any, received: Any, context: grpc.aio.ServicerContext) -> Any:
        incoming = received if isinstance(received, Received) else Received(received)
        del received
        model = model_of(incoming)
        try:
            if incoming.error is not None:
                raise incoming.error
            return await handler(self, incoming, context)
        except AgentError as exc:
            code, details = status_for(exc), str(exc)
            _forget(exc)
            REJECTIONS.log(
                logging.INFO,
                (op, code.name),
                "event=rejected op=%s model=%s code=%s reason=%r",
                op,
                model,
                code.name,
                details,
            )
        except Exception as exc:
            code, details = _unexpected(exc, op, model)
            _forget(exc)
        # Outside the except blocks: the abort exception chains no exception of ours.
        try:
            await context.abort(code, details)
        finally:
            incoming.release()

    return wrapper  # type: ignore[return-value]


def _unexpected(exc: Exception, op: str, model: str) -> tuple[grpc.StatusCode, str]:
    """A shortage of the host (memory, descriptors, space) is RESOURCE_EXHAUSTED; anything else is
    INTERNAL, with the traceback in the log and a reference to it in the message."""
    if isinstance(exc, MemoryError):
        shortage_error: AgentError | None = OverloadedError(
            f"{op}: the agent is out of memory; this is a shortage on the agent's host: retry later"
        )
    elif isinstance(exc, OSError):
        shortage_error = shortage(exc, f"{op}: {exc.strerror or type(exc).__name__}")
    else:
        shortage_error = None
    if shortage_error is not None:
        log.warning("event=resource_exhausted op=%s model=%s reason=%r", op, model, str(shortage_error))
        return grpc.StatusCode.RESOURCE_EXHAUSTED, str(shortage_error)
    reference = uuid.uuid4().hex[:12]
    log.error("event=internal_error op=%s model=%s ref=%s", op, model, reference, exc_info=exc)
    return (
        grpc.StatusCode.INTERNAL,
        f"internal error in the agent (log reference {reference}); other models and clients are unaffected",
    )


def _forget(exc: BaseException) -> None:
    """Drop the tracebacks of `exc` and of the exceptions chained to it, with the locals of the frames
    they passed through (the request among them): none may outlive the call."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if current.__traceback__ is not None:
            traceback.clear_frames(current.__traceback__)
            current.__traceback__ = None
        pending += [current.__cause__, current.__context__]
