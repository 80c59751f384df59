"""The one table from domain errors to gRPC status codes, and the wrapper that applies it.

Codes follow the guide's per-RPC table: INVALID_ARGUMENT bad input, NOT_FOUND unknown model,
FAILED_PRECONDITION wrong model state, RESOURCE_EXHAUSTED overload or no memory, INTERNAL for
anything unexpected (traceback to the log, a short message with a log reference to the client).
"""

from __future__ import annotations

import functools
import logging
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
    shown,
)

log = logging.getLogger(__name__)

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
    return shown(getattr(request, "model_component", ""), 64)


def rpc(handler: Handler) -> Handler:
    """Run an async servicer method; turn errors into an aborted call with the right status code."""
    op = handler.__name__

    @functools.wraps(handler)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            if hasattr(request, "type_name") and hasattr(request, "reason"):  # service.Undecodable
                raise InvalidInputError(
                    f"the request is not a valid {request.type_name} message: {request.reason}"
                )
            return await handler(self, request, context)
        except AgentError as exc:
            code = status_for(exc)
            log.info(
                "event=rejected op=%s model=%s code=%s reason=%r", op, model_of(request), code.name, str(exc)
            )
            await context.abort(code, str(exc))
        except Exception:
            reference = uuid.uuid4().hex[:12]
            log.exception("event=internal_error op=%s model=%s ref=%s", op, model_of(request), reference)
            await context.abort(
                grpc.StatusCode.INTERNAL,
                f"internal error in the agent (log reference {reference}); other models and clients are unaffected",
            )

    return wrapper  # type: ignore[return-value]
