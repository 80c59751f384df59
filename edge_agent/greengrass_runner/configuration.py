"""Component configuration across deployments, resolved the way the nucleus does (KernelConfigResolver).

For every deployment of a component, whatever its version:
1. start from the configuration the device has now (empty the first time);
2. remove each `reset` path (`""` clears the whole document);
3. apply the recipe's DefaultConfiguration *under* what deployments merged: the nucleus writes
   defaults with timestamp 1 and merges with the deployment's time, and a value is replaced only
   by one at least as new. So a default fills a missing key and replaces an older default (an
   upgrade brings its new defaults), a reset key gets its default back, and values merged by
   earlier deployments survive an upgrade;
4. deep-merge the deployment's `merge` (remembering which leaves it set, for step 3 next time).

Paths are RFC 6901 JSON pointers, parsed with `jsonpointer`.
"""

from __future__ import annotations

import copy
import json
import logging
from dataclasses import dataclass, field
from typing import Any

from jsonpointer import JsonPointer, JsonPointerException

from edge_agent.errors import InvalidInputError

log = logging.getLogger(__name__)


@dataclass
class ConfigurationUpdate:
    """Greengrass configurationUpdate: `reset` pointers first, then `merge` (JSON text or object)."""

    merge: dict[str, Any] = field(default_factory=dict)
    reset: list[str] = field(default_factory=list)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ConfigurationUpdate:
        merge = data.get("merge") or {}
        if isinstance(merge, str):
            try:
                merge = json.loads(merge)
            except json.JSONDecodeError as exc:
                raise InvalidInputError(f"configurationUpdate.merge is not valid JSON: {exc}") from None
        if not isinstance(merge, dict):
            raise InvalidInputError("configurationUpdate.merge must be a JSON object")
        reset = data.get("reset") or []
        if not isinstance(reset, list) or not all(isinstance(p, str) for p in reset):
            raise InvalidInputError(
                'configurationUpdate.reset must be a list of JSON pointers, e.g. ["/Socket"]'
            )
        return cls(merge=merge, reset=list(reset))


def resolve_configuration(
    current: dict[str, Any] | None,
    defaults: dict[str, Any],
    update: ConfigurationUpdate | None,
    merged: list[str] | tuple[str, ...] = (),
) -> tuple[dict[str, Any], list[str]]:
    """The configuration after this deployment, and the pointers of the values deployments set.

    `merged` lists the leaves earlier deployments merged (the nucleus stamps those with the
    deployment's time and defaults with time 1): a default replaces only values that came from
    defaults, so a new version's defaults reach keys nobody set, and merged values survive.
    """
    config: dict[str, Any] = copy.deepcopy(current) if current else {}
    explicit = {tuple(_parts(p)) for p in merged}
    for pointer in update.reset if update else ():
        if pointer == "":
            config, explicit = {}, set()
            continue
        parts = tuple(_parts(pointer))
        if _reset(config, parts, pointer):
            explicit = {e for e in explicit if e[: len(parts)] != parts}
    _apply_defaults(config, defaults, (), explicit)
    if update:
        _merge(config, update.merge, (), explicit)
    return config, sorted(JsonPointer.from_parts(list(e)).path for e in explicit)


def _parts(pointer: str) -> list[str]:
    try:
        return JsonPointer(pointer).parts
    except JsonPointerException as exc:
        raise InvalidInputError(
            f"configuration path {pointer!r} is not a JSON pointer ({exc}); write it as /Key/SubKey"
        ) from None


def _reset(config: dict[str, Any], parts: tuple[str, ...], pointer: str) -> bool:
    node: Any = config
    for part in parts[:-1]:
        if isinstance(node, list):
            break
        if not isinstance(node, dict) or part not in node:
            return False  # nothing there to reset
        node = node[part]
    if isinstance(node, list):
        # As the nucleus: an element of an array cannot be reset; the deployment goes on without it.
        log.warning("op=reset pointer=%s skipped: it points into an array", pointer)
        return False
    if isinstance(node, dict):
        node.pop(parts[-1], None)
    return True


def _touches(path: tuple[str, ...], explicit: set[tuple[str, ...]]) -> bool:
    """A merged value sits at `path`, above it or below it."""
    return any(e[: len(path)] == path or path[: len(e)] == e for e in explicit)


def _apply_defaults(
    node: dict[str, Any], defaults: dict[str, Any], prefix: tuple[str, ...], explicit: set[tuple[str, ...]]
) -> None:
    for key, value in defaults.items():
        path = (*prefix, key)
        if isinstance(value, dict):
            if not isinstance(node.get(key), dict):
                if key in node and _touches(path, explicit):
                    continue  # a merged value wins over a default
                node[key] = {}
            _apply_defaults(node[key], value, path, explicit)
        elif key not in node or not _touches(path, explicit):
            node[key] = copy.deepcopy(value)


def _merge(
    node: dict[str, Any], extra: dict[str, Any], prefix: tuple[str, ...], explicit: set[tuple[str, ...]]
) -> None:
    for key, value in extra.items():
        path = (*prefix, key)
        if isinstance(value, dict):
            if not isinstance(node.get(key), dict):
                node[key] = {}
                explicit.difference_update({e for e in explicit if e[: len(path)] == path})
            _merge(node[key], value, path, explicit)
        else:
            node[key] = copy.deepcopy(value)
            explicit.difference_update({e for e in explicit if e[: len(path)] == path})
            explicit.add(path)
