"""Component versions and VersionRequirement ranges, with `semantic_version` (npm range syntax, as the nucleus).

The nucleus reads requirements as npm ranges (`>=1.3.0 <3.0.0`, `^1.0.0`, `1.x`, `*`, `a || b`);
`semantic_version.NpmSpec` implements that grammar, so this module only turns its errors into ours.
"""

from __future__ import annotations

from semantic_version import NpmSpec, Version

from edge_agent.errors import InvalidInputError

__all__ = ["Version", "parse_requirement", "parse_version", "satisfies"]


def parse_version(text: str) -> Version:
    """A component version: major.minor.patch with optional pre-release and build parts."""
    try:
        return Version(text.strip())
    except ValueError:
        raise InvalidInputError(f"{text!r} is not a semantic version major.minor.patch") from None


def parse_requirement(text: str) -> NpmSpec:
    """A VersionRequirement; an empty one matches every version, as in the nucleus."""
    try:
        return NpmSpec(text.strip() or "*")
    except ValueError as exc:
        raise InvalidInputError(f"version requirement {text!r} is not an npm-style range: {exc}") from None


def satisfies(version: str | Version, requirement: str) -> bool:
    """True when `version` meets the npm-style `requirement`."""
    parsed = version if isinstance(version, Version) else parse_version(version)
    return parsed in parse_requirement(requirement)
