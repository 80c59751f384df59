"""Compiler options: a JSON string validated against the catalogue's schema for the accelerator.

NVIDIA targets take `gpu-code` (sm_NN), `trt-ver` (x.y.z) and `cuda-ver` (x.y), all required.
CPU targets take optional `mcpu` (default per architecture, `core-avx2` on x86_64) and `mattr`.
The guide's CLI template spells `gpu_code`; such near misses get a did-you-mean message.
"""

from __future__ import annotations

import difflib
import json
import re
from typing import Any

from edge_agent.errors import InvalidInputError
from edge_agent.packager.catalogue import Catalogue

MIN_OPTIONS_CHARS = 3
MAX_OPTIONS_CHARS = 1024


class CompilerOptionsError(InvalidInputError):
    """CompilerOptions is not valid for the target."""


def parse_options_text(text: str) -> dict[str, Any]:
    """Decode the CompilerOptions JSON string (3..1024 characters, a JSON object)."""
    if not MIN_OPTIONS_CHARS <= len(text) <= MAX_OPTIONS_CHARS:
        raise CompilerOptionsError(
            f"CompilerOptions is {len(text)} characters long; it must be {MIN_OPTIONS_CHARS}.."
            f'{MAX_OPTIONS_CHARS} characters of JSON, e.g. \'{{"gpu-code": "sm_75", "trt-ver": "8.2.1", '
            f'"cuda-ver": "11.2"}}\''
        )
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        # Shell quoting sometimes leaves the guide's \" escapes in place; accept them once.
        if '\\"' in text:
            return parse_options_text(text.replace('\\"', '"'))
        raise CompilerOptionsError(f"CompilerOptions {text!r} is not valid JSON: {exc.msg}") from None
    if not isinstance(value, dict):
        raise CompilerOptionsError(f"CompilerOptions must be a JSON object; got {type(value).__name__}")
    return value


def validate_options(
    options: dict[str, Any], accelerator: str | None, arch: str, catalogue: Catalogue
) -> dict[str, Any]:
    """Check keys and values for the target and fill defaults; returns the effective options."""
    schema = catalogue.option_schema(accelerator)
    target_kind = accelerator or "CPU"
    other_kinds = [kind for kind in catalogue.data["compiler_options"] if kind != target_kind]
    result: dict[str, Any] = {}
    for key, value in options.items():
        if key not in schema:
            raise CompilerOptionsError(_unknown_key_message(key, target_kind, schema, other_kinds, catalogue))
        result[key] = _check_value(key, value, schema[key])
    for key, spec in schema.items():
        if spec.get("required") and key not in result:
            raise CompilerOptionsError(
                f"CompilerOptions lacks {key!r}, required for {target_kind} targets "
                f'({spec.get("help", "")}); e.g. "{key}": {json.dumps(spec.get("example"))}'
            )
    if accelerator is None:
        for key, value in catalogue.cpu_defaults(arch).items():
            result.setdefault(key, value)
        mcpu = result.get("mcpu")
        models = catalogue.cpu_models(arch)
        if mcpu is not None and models and mcpu not in models:
            close = difflib.get_close_matches(mcpu, list(models), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise CompilerOptionsError(
                f"CompilerOptions mcpu {mcpu!r} is not a known {arch} CPU model.{hint} Known: {sorted(models)}"
            )
    return result


def _check_value(key: str, value: Any, spec: dict[str, Any]) -> Any:
    if "pattern" in spec:
        if not isinstance(value, str) or not re.fullmatch(spec["pattern"], value):
            raise CompilerOptionsError(
                f"CompilerOptions {key!r} is {value!r}; expected a string like {spec.get('example')!r} "
                f"({spec.get('help', '')})"
            )
        return value
    if "list_pattern" in spec:
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not all(
            isinstance(item, str) and re.fullmatch(spec["list_pattern"], item) for item in items
        ):
            raise CompilerOptionsError(
                f"CompilerOptions {key!r} is {value!r}; expected a list of flags like "
                f"{spec.get('example')!r} ({spec.get('help', '')})"
            )
        return list(items)
    return value


def _unknown_key_message(
    key: str, kind: str, schema: dict[str, Any], other_kinds: list[str], catalogue: Catalogue
) -> str:
    alias = catalogue.option_aliases.get(key) or catalogue.option_aliases.get(key.lower())
    if alias in schema:
        return f"CompilerOptions key {key!r} is not valid. Did you mean {alias!r}?"
    for other in other_kinds:
        other_schema = catalogue.option_schema(None if other == "CPU" else other)
        if key in other_schema or alias in other_schema:
            hint = f" (did you mean {alias!r}?)" if alias else ""
            return (
                f"CompilerOptions key {key!r}{hint} applies to {other} targets, but this target is {kind}; "
                f"{kind} targets take {sorted(schema)}"
            )
    close = difflib.get_close_matches(key, list(schema), n=1, cutoff=0.6)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return f"CompilerOptions key {key!r} is not valid for {kind} targets.{hint} Valid keys: {sorted(schema)}"
