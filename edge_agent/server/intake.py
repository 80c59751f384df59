"""Request intake: the raw bytes of every call are charged to one budget before they are parsed.

gRPC hands each request's bytes to our deserializer, on the event loop, once the whole message has
arrived. That is the first moment Python sees it, and the cheapest one to refuse it: a message that
would take the bytes held by calls in progress past `--max-inflight-mb` is not parsed at all, and the
call is answered RESOURCE_EXHAUSTED at once. A parsed call holds its charge until it ends: when its
`Received` is collected (nothing else refers to it once the call is over, a detection that outlives
its caller included), or earlier through `release`, which `server.status.rpc` calls on a failed call.

What a charge stands for: an inline DetectAnomalies call holds its message (parsed) and one copy of
the pixels, about twice the charge, while it runs; other calls are a few hundred bytes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from google.protobuf.message import DecodeError

from edge_agent.errors import AgentError, InvalidInputError, OverloadedError

MIB = 1 << 20


class InflightBudget:
    """Bytes of request messages held by calls in progress, bounded by `limit`."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._held = 0
        self._lock = threading.Lock()

    @property
    def held(self) -> int:
        return self._held

    def try_take(self, size: int) -> bool:
        with self._lock:
            if self._held + size > self.limit:
                return False
            self._held += size
            return True

    def give_back(self, size: int) -> None:
        with self._lock:
            self._held -= size


class Received:
    """What the deserializer hands a handler: the message (its attributes are the message's, so
    handlers and interceptors use it as one), or the error that refuses the call. It holds the call's
    charge until `release` or until it is collected, which is when the call has ended."""

    __slots__ = ("_budget", "_charge", "error", "message")

    def __init__(
        self,
        message: object = None,
        error: AgentError | None = None,
        budget: InflightBudget | None = None,
        charge: int = 0,
    ) -> None:
        self.message = message
        self.error = error
        self._budget = budget
        self._charge = charge

    def __getattr__(self, name: str) -> Any:
        # Only for names that are not Received's own: the message's fields and methods.
        return getattr(object.__getattribute__(self, "message"), name)

    def release(self) -> None:
        """Give the call's bytes back to the budget (idempotent); the message is dropped too."""
        budget, self._budget = self._budget, None
        self.message = None
        if budget is not None:
            budget.give_back(self._charge)

    def __del__(self) -> None:
        self.release()


def deserializer(message_type: type, budget: InflightBudget) -> Callable[[bytes], Received]:
    """Charge, then parse. Bytes that do not parse become INVALID_ARGUMENT with the parser's reason
    (instead of gRPC's generic error); bytes beyond the budget are never parsed."""
    full_name = message_type.DESCRIPTOR.full_name

    def deserialize(data: bytes) -> Received:
        size = len(data)
        if not budget.try_take(size):
            return Received(
                error=OverloadedError(
                    f"the agent already holds {budget.held // MIB} MiB of requests in progress and this "
                    f"{full_name} is {size / MIB:.1f} MiB; its limit is --max-inflight-mb "
                    f"{budget.limit // MIB}: retry later, or send large frames through shared memory"
                )
            )
        try:
            message = message_type.FromString(data)
        except DecodeError as exc:
            budget.give_back(size)
            return Received(error=InvalidInputError(f"the request is not a valid {full_name} message: {exc}"))
        return Received(message, budget=budget, charge=size)

    return deserialize
