"""Model lifecycle as a transition table. Pure: no threads, no I/O.

States are the proto's ModelStatus values. StartModel is allowed from STOPPED or FAILED and
moves to STARTING; the background load ends in RUNNING or FAILED. StopModel is allowed from
RUNNING only and passes through STOPPING to STOPPED. An illegal request raises WrongStateError
and changes nothing.
"""

from __future__ import annotations

from enum import Enum

from edge_agent.errors import WrongStateError, shown
from edge_agent.protocol.edge_agent_pb2 import FAILED, RUNNING, STARTING, STOPPED, STOPPING, ModelStatus


class Event(Enum):
    START = "StartModel"
    LOADED = "load succeeded"
    LOAD_FAILED = "load failed"
    STOP = "StopModel"
    STOPPED = "stop finished"


# event -> (states it is allowed from, state it leads to)
TRANSITIONS: dict[Event, tuple[frozenset[int], int]] = {
    Event.START: (frozenset({STOPPED, FAILED}), STARTING),
    Event.LOADED: (frozenset({STARTING}), RUNNING),
    Event.LOAD_FAILED: (frozenset({STARTING}), FAILED),
    Event.STOP: (frozenset({RUNNING}), STOPPING),
    Event.STOPPED: (frozenset({STOPPING}), STOPPED),
}


def status_name(status: int) -> str:
    return ModelStatus.Name(status)


def next_state(model: str, state: int, event: Event) -> int:
    """The state after `event`, or WrongStateError naming the states that would allow it."""
    allowed, target = TRANSITIONS[event]
    if state not in allowed:
        needed = " or ".join(status_name(s) for s in sorted(allowed))
        raise WrongStateError(
            f"model {shown(model)} is {status_name(state)}; {event.value} needs it {needed}"
        )
    return target
