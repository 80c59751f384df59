"""Where the endpoints may listen: loopback or a Unix socket, nothing else."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_agent.errors import InvalidInputError
from edge_agent.observability.config import TcpAddress, UnixAddress, parse_address


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:9464", TcpAddress("127.0.0.1", 9464)),
        ("localhost:0", TcpAddress("127.0.0.1", 0)),
        ("127.0.0.2:80", TcpAddress("127.0.0.2", 80)),
        ("[::1]:9464", TcpAddress("::1", 9464)),
        ("unix:///run/edge-agent/metrics.sock", UnixAddress(Path("/run/edge-agent/metrics.sock"))),
        ("unix:relative.sock", UnixAddress(Path("relative.sock"))),
    ],
)
def test_accepted_addresses(text, expected):
    assert parse_address("--metrics-address", text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0.0.0.0:9464", "not a loopback address"),
        ("[::]:9464", "not a loopback address"),
        ("10.0.0.5:9464", "not a loopback address"),
        ("example.com:9464", "loopback IP address"),
        ("127.0.0.1:70000", "outside 0..65535"),
        ("127.0.0.1", "HOST:PORT"),
        ("unix://", "path is empty"),
        ("unix:///" + "x" * 120, "longer than 107 bytes"),
    ],
)
def test_refused_addresses_say_why(text, message):
    with pytest.raises(InvalidInputError, match=message):
        parse_address("--metrics-address", text)


def test_str_round_trips():
    assert str(parse_address("x", "[::1]:1")) == "[::1]:1"
    assert str(parse_address("x", "unix:///a.sock")) == "unix:///a.sock"
