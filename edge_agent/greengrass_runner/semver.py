"""Semantic versions and the npm-style requirements Greengrass uses in VersionRequirement.

Supported: exact `1.2.3` / `=1.2.3`, comparators `> >= < <=`, `^1.2.3`, `~1.2.3`, `*`/`x` wildcards
(`1.x`, `1.2.*`), space-separated comparator sets (AND) and `||` (OR). Pre-release tags are
compared after the numbers, as in semver.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import total_ordering

from edge_agent.errors import InvalidInputError

_VERSION = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$")
_PARTIAL = re.compile(r"^v?(\d+|[xX*])(?:\.(\d+|[xX*]))?(?:\.(\d+|[xX*]))?(?:-([0-9A-Za-z.-]+))?$")


@total_ordering
@dataclass(frozen=True)
class Version:
    major: int
    minor: int
    patch: int
    pre: str = ""

    @classmethod
    def parse(cls, text: str) -> Version:
        match = _VERSION.match(text.strip())
        if not match:
            raise InvalidInputError(f"{text!r} is not a semantic version major.minor.patch")
        return cls(int(match[1]), int(match[2]), int(match[3]), match[4] or "")

    def _key(self) -> tuple:
        # A release sorts after its pre-releases.
        pre = tuple((0, int(p)) if p.isdigit() else (1, p) for p in self.pre.split(".")) if self.pre else ()
        return (self.major, self.minor, self.patch, not self.pre, pre)

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key() < other._key()

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}" + (f"-{self.pre}" if self.pre else "")


def satisfies(version: str | Version, requirement: str) -> bool:
    """True when `version` meets the npm-style `requirement`."""
    v = version if isinstance(version, Version) else Version.parse(version)
    for alternative in requirement.split("||"):
        comparators = _comparators(alternative)
        if all(_compare(v, op, bound) for op, bound in comparators):
            return True
    return False


def _comparators(text: str) -> list[tuple[str, Version]]:
    tokens = re.findall(r"(>=|<=|>|<|=|\^|~)?\s*([^\s<>=^~]+)", text.strip())
    if not tokens:
        return []  # empty requirement matches everything
    result: list[tuple[str, Version]] = []
    for op, raw in tokens:
        result.extend(_expand(op or "=", raw))
    return result


def _expand(op: str, raw: str) -> list[tuple[str, Version]]:
    match = _PARTIAL.match(raw)
    if not match:
        raise InvalidInputError(f"version requirement part {op}{raw!r} is not a version")
    parts = [None if p is None or p in "xX*" else int(p) for p in match.groups()[:3]]
    pre = match[4] or ""
    major, minor, patch = parts
    if major is None:
        return []  # '*'
    if op == "^":
        low = Version(major, minor or 0, patch or 0, pre)
        if major > 0 or minor is None:
            high = Version(major + 1, 0, 0)
        elif minor > 0 or patch is None:
            high = Version(0, minor + 1, 0)
        else:
            high = Version(0, 0, (patch or 0) + 1)
        return [(">=", low), ("<", high)]
    if op == "~":
        low = Version(major, minor or 0, patch or 0, pre)
        high = Version(major, (minor or 0) + 1, 0) if minor is not None else Version(major + 1, 0, 0)
        return [(">=", low), ("<", high)]
    if minor is None or patch is None:  # partial: 1.x or 1.2.x
        low = Version(major, minor or 0, 0)
        high = Version(major + 1, 0, 0) if minor is None else Version(major, minor + 1, 0)
        if op == "=":
            return [(">=", low), ("<", high)]
        if op in (">", "<="):
            return [("<" if op == "<=" else ">=", high)]
        return [(op, low)]
    return [(op, Version(major, minor, patch, pre))]


def _compare(v: Version, op: str, bound: Version) -> bool:
    return {
        "=": v == bound,
        ">": v > bound,
        ">=": v >= bound,
        "<": v < bound,
        "<=": v <= bound,
    }[op]
