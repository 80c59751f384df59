"""Every shipped recipe passes gdk's Greengrass recipe schema and the nucleus's rules (URI schemes, platforms).

The packager's outputs are checked the same way in tests/unit/packager/test_recipe_schema.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.unit.greengrass_runner.recipe_checks import recipe_problems

REPO = Path(__file__).resolve().parents[3]
SHIPPED = sorted(
    p.relative_to(REPO).as_posix()
    for pattern in ("greengrass/**/recipe.json", "greengrass/**/recipe.yaml")
    for p in REPO.glob(pattern)
)


def load(path: Path) -> dict:
    text = path.read_text(encoding="utf-8")
    return yaml.safe_load(text) if path.suffix == ".yaml" else json.loads(text)


def test_the_shipped_recipes_are_found() -> None:
    assert {"greengrass/agent/recipe.json", "greengrass/client/recipe.yaml"} <= set(SHIPPED)


@pytest.mark.parametrize("relative", SHIPPED)
def test_shipped_recipe(relative: str) -> None:
    assert recipe_problems(load(REPO / relative)) == []


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (lambda r: r.update(ComponentVersion=1), "schema: componentversion: 1 is not of type 'string'"),
        (lambda r: r["Manifests"][0].update(Platform={"os": "*"}), "never matches in the nucleus"),
        (
            lambda r: r["Manifests"][0]["Artifacts"][0].update(URI="file:///m.zip"),
            "UNSUPPORTED_ARTIFACT_SCHEME",
        ),
        (lambda r: r["Manifests"][0]["Artifacts"][0].update(Unarchive="TAR"), "'TAR' is not one of"),
        (lambda r: r.update(Extra=1), "Additional properties are not allowed"),
    ],
)
def test_the_checks_catch_what_they_should(change, fragment: str) -> None:
    raw = {
        "RecipeFormatVersion": "2020-01-25",
        "ComponentName": "com.example.Check",
        "ComponentVersion": "1.0.0",
        "Manifests": [
            {"Platform": {"os": "linux"}, "Lifecycle": {"run": "true"}, "Artifacts": [{"URI": "s3://b/m"}]}
        ],
    }
    assert recipe_problems(raw) == []
    change(raw)
    problems = recipe_problems(raw)
    assert any(fragment in p for p in problems), problems
