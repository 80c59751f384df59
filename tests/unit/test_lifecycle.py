from __future__ import annotations

import itertools

import pytest

from edge_agent.errors import WrongStateError
from edge_agent.lifecycle import TRANSITIONS, Event, next_state
from edge_agent.protocol.edge_agent_pb2 import FAILED, RUNNING, STARTING, STOPPED, STOPPING

STATES = [STOPPED, STARTING, RUNNING, FAILED, STOPPING]
EXPECTED = {
    (STOPPED, Event.START): STARTING,
    (FAILED, Event.START): STARTING,
    (STARTING, Event.LOADED): RUNNING,
    (STARTING, Event.LOAD_FAILED): FAILED,
    (RUNNING, Event.STOP): STOPPING,
    (STOPPING, Event.STOPPED): STOPPED,
}


@pytest.mark.parametrize(("state", "event"), list(itertools.product(STATES, Event)))
def test_every_state_event_pair_follows_the_guide(state, event):
    if (state, event) in EXPECTED:
        assert next_state("m", state, event) == EXPECTED[(state, event)]
    else:
        with pytest.raises(WrongStateError) as info:
            next_state("m", state, event)
        assert "'m'" in str(info.value) and event.value in str(info.value)


def test_table_covers_every_event():
    assert set(TRANSITIONS) == set(Event)
