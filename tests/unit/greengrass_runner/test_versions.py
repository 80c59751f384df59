"""npm-style version requirements as Greengrass uses them in VersionRequirement (semantic_version.NpmSpec)."""

from __future__ import annotations

import pytest

from edge_agent.errors import InvalidInputError
from edge_agent.greengrass_runner.versions import parse_version, satisfies


@pytest.mark.parametrize(
    ("version", "requirement", "expected"),
    [
        ("1.0.0", ">=1.0.0", True),
        ("0.9.9", ">=1.0.0", False),
        ("1.5.2", "^1.1.0", True),
        ("2.0.0", "^1.1.0", False),
        ("0.2.5", "^0.2.1", True),
        ("0.3.0", "^0.2.1", False),
        ("0.0.3", "^0.0.3", True),
        ("0.0.4", "^0.0.3", False),
        ("1.2.9", "~1.2.0", True),
        ("1.3.0", "~1.2.0", False),
        ("1.4.0", ">=1.3.0 <3.0.0", True),  # AWS's C++ sample client on our agent
        ("0.1.0", ">=1.3.0 <3.0.0", False),
        ("1.4.0", ">=0.1.0 <2.0.0", True),  # the GStreamer sample
        ("2.0.0", ">=0.1.0 <2.0.0", False),
        ("3.1.4", "*", True),
        ("3.1.4", "", True),
        ("1.4.0", "1.x", True),
        ("2.0.0", "1.x", False),
        ("1.2.7", "1.2.*", True),
        ("2.0.0", "1.0.0 || 2.0.0", True),
        ("1.0.1", "1.0.0 || 2.0.0", False),
        ("1.0.0", "=1.0.0", True),
        ("1.0.0-rc.1", ">=1.0.0", False),
        ("1.0.0", ">1.0.0-rc.1", True),
        ("1.1.0", ">1.0", True),
        ("1.0.5", "<=1.0", True),
    ],
)
def test_requirements(version: str, requirement: str, expected: bool) -> None:
    assert satisfies(version, requirement) is expected


def test_ordering_and_errors() -> None:
    versions = sorted(map(parse_version, ["1.10.0", "1.2.0", "1.2.0-rc.2", "1.2.0-rc.10"]))
    assert [str(v) for v in versions] == ["1.2.0-rc.2", "1.2.0-rc.10", "1.2.0", "1.10.0"]
    with pytest.raises(InvalidInputError, match="not a semantic version"):
        parse_version("1.0")
    with pytest.raises(InvalidInputError, match="npm-style range"):
        satisfies("1.0.0", ">=one")
