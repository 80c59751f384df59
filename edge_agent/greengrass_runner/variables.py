"""Recipe variables: `{configuration:/pointer}`, `{artifacts:path}`, `{artifacts:decompressedPath}`,
`{work:path}`, each optionally prefixed by a direct dependency's name, plus `{kernel:rootPath}` and
`{iot:thingName}`.

As in the nucleus, a pointer to a missing node leaves the text unchanged, a value node becomes its
string form (null -> "null", true -> "true"), and an object node becomes its JSON. Other braces
(shell `${VAR}`, JSON) are left alone because only these forms are recognised.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from jsonpointer import JsonPointer, JsonPointerException

_VARIABLE = re.compile(
    r"\{(?:(?P<component>[A-Za-z0-9\-_.]+):)?"
    r"(?P<kind>configuration:(?P<pointer>/[^}]*)|artifacts:path|artifacts:decompressedPath|work:path)\}"
)
_MISSING = object()


@dataclass(frozen=True)
class ComponentPaths:
    """What the variables of one component resolve to."""

    artifacts: str
    decompressed: str
    work: str
    configuration: dict[str, Any]


def resolve_pointer(document: Any, pointer: str) -> Any:
    """RFC 6901 JSON pointer lookup (jsonpointer); returns _MISSING when a segment is absent or malformed."""
    try:
        return JsonPointer(pointer).resolve(document, _MISSING)
    except JsonPointerException:
        return _MISSING


def _render(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def interpolate(
    text: str,
    own: ComponentPaths,
    dependencies: dict[str, ComponentPaths],
    root: str,
    thing_name: str,
    on_unresolved: Callable[[str], None] | None = None,
) -> str:
    """Substitute every recognised recipe variable in `text`."""
    text = text.replace("{kernel:rootPath}", root).replace("{iot:thingName}", thing_name)

    def substitute(match: re.Match[str]) -> str:
        component = match.group("component")
        paths = own if component is None else dependencies.get(component)
        if paths is None:
            if on_unresolved:
                on_unresolved(f"{match.group(0)}: {component} is not a direct dependency")
            return match.group(0)
        kind = match.group("kind")
        if kind == "artifacts:path":
            return paths.artifacts
        if kind == "artifacts:decompressedPath":
            return paths.decompressed
        if kind == "work:path":
            return paths.work
        value = resolve_pointer(paths.configuration, match.group("pointer"))
        if value is _MISSING:
            if on_unresolved:
                on_unresolved(f"{match.group(0)}: no such configuration key")
            return match.group(0)
        return _render(value)

    return _VARIABLE.sub(substitute, text)
