"""The in-flight budget and the deserializer that charges it (the daemon tests use it for real)."""

from __future__ import annotations

import gc

from edge_agent.errors import InvalidInputError, OverloadedError
from edge_agent.protocol import edge_agent_pb2 as pb
from edge_agent.server.intake import InflightBudget, deserializer


def test_a_call_holds_its_bytes_until_released_once():
    budget = InflightBudget(100)
    parse = deserializer(pb.DescribeModelRequest, budget)
    raw = pb.DescribeModelRequest(model_component="m" * 40).SerializeToString()
    first = parse(raw)
    assert first.message.model_component == "m" * 40 and budget.held == len(raw)
    first.release()
    first.release()  # idempotent
    assert budget.held == 0 and first.message is None


def test_bytes_beyond_the_budget_are_refused_unparsed():
    budget = InflightBudget(50)
    parse = deserializer(pb.DescribeModelRequest, budget)
    raw = pb.DescribeModelRequest(model_component="m" * 40).SerializeToString()
    held = parse(raw)
    refused = parse(raw)
    assert refused.message is None and isinstance(refused.error, OverloadedError)
    assert "--max-inflight-mb" in str(refused.error)
    assert budget.held == len(raw)  # the refused call took nothing
    held.release()
    assert parse(raw).error is None


def test_a_dropped_call_gives_its_bytes_back():
    budget = InflightBudget(1000)
    parse = deserializer(pb.StartModelRequest, budget)
    parse(pb.StartModelRequest(model_component="abc").SerializeToString())  # never released
    gc.collect()
    assert budget.held == 0


def test_bytes_that_do_not_parse_are_invalid_argument_and_free():
    budget = InflightBudget(1000)
    received = deserializer(pb.StopModelRequest, budget)(b"\xff\xff\xff")
    assert isinstance(received.error, InvalidInputError)
    assert "not a valid AWS.LookoutVision.StopModelRequest" in str(received.error)
    assert budget.held == 0
