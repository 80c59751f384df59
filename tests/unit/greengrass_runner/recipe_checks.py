"""Recipe checks shared by the schema tests: gdk's JSON schema, then the nucleus's own rules."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

from edge_agent.errors import InvalidInputError
from edge_agent.greengrass_runner.recipe import nucleus_problems, parse_recipe

SCHEMA = Path(__file__).resolve().parents[2] / "data" / "greengrass-recipe-schema" / "recipe_schema.json"


@cache
def validator() -> jsonschema.Draft7Validator:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def keys_to_lower(value: Any) -> Any:
    """What gdk's RecipeValidator does before validating: the schema spells every key in lower case."""
    if isinstance(value, dict):
        return {str(k).lower(): keys_to_lower(v) for k, v in value.items()}
    if isinstance(value, list):
        return [keys_to_lower(v) for v in value]
    return value


def recipe_problems(raw: dict[str, Any]) -> list[str]:
    """Schema errors (as gdk reports them) plus what the nucleus refuses or never matches."""
    problems = [
        f"schema: {'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
        for e in validator().iter_errors(keys_to_lower(raw))
    ]
    problems += nucleus_problems(raw)
    try:
        parse_recipe(raw)  # and the runner can read it
    except InvalidInputError as exc:
        problems.append(f"runner: {exc}")
    return problems
