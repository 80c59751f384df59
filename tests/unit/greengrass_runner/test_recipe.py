"""Recipe parsing: JSON/YAML, case-insensitive keys, manifest selection by platform, global lifecycle."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge_agent.greengrass_runner.recipe import RecipeError, load_recipe, parse_recipe, platform_matches

BASE = {"RecipeFormatVersion": "2020-01-25", "ComponentName": "com.example.A", "ComponentVersion": "1.0.0"}
LINUX_AMD64 = {"os": "linux", "architecture": "amd64"}


def recipe(**extra: object):
    return parse_recipe({**BASE, **extra})


def test_first_matching_manifest_wins_and_keys_are_case_insensitive() -> None:
    r = recipe(
        componentDependencies={"B": {"versionRequirement": "^1.0.0", "dependencyType": "soft"}},
        manifests=[
            {"platform": {"os": "linux", "architecture": "aarch64"}, "lifecycle": {"Run": "arm"}},
            {
                "Platform": {"os": "linux", "architecture": "/amd64|x86/"},
                "Lifecycle": {"Install": {"script": "i", "timeout": 5}, "Run": "x86"},
                "Artifacts": [{"Uri": "s3://b/p/model.zip", "unarchive": "zip"}],
            },
            {"Lifecycle": {"run": "any"}},
        ],
    )
    assert [(d.name, d.requirement, d.hard) for d in r.dependencies] == [("B", "^1.0.0", False)]
    steps, _, artifacts = r.select(LINUX_AMD64)
    assert steps["run"].script == "x86" and steps["run"].timeout_s is None
    assert steps["install"].timeout_s == 5.0
    assert [(a.uri, a.unarchive, a.filename) for a in artifacts] == [
        ("s3://b/p/model.zip", "ZIP", "model.zip")
    ]
    assert r.select({"os": "darwin", "architecture": "arm64"})[0]["run"].script == "any"


def test_no_matching_manifest_is_an_error() -> None:
    r = recipe(
        Manifests=[{"Platform": {"os": "linux", "architecture": "aarch64"}, "Lifecycle": {"run": "x"}}]
    )
    with pytest.raises(RecipeError, match="no manifest for this platform"):
        r.select(LINUX_AMD64)


def test_default_timeouts_and_step_options() -> None:
    r = recipe(
        Manifests=[
            {
                "Lifecycle": {
                    "setenv": {"A": "1"},
                    "install": {
                        "Script": "i",
                        "Skipif": "onpath git",
                        "RequiresPrivilege": True,
                        "Setenv": {"B": "2"},
                    },
                    "startup": "s",
                    "shutdown": "d",
                    "bootstrap": "b",
                    "recover": "r",
                }
            }
        ]
    )
    steps, setenv, _ = r.select(LINUX_AMD64)
    assert setenv == {"A": "1"}
    assert {k: v.timeout_s for k, v in steps.items()} == {
        "install": 120.0,
        "startup": 120.0,
        "shutdown": 15.0,
        "bootstrap": 120.0,
        "recover": 60.0,
    }
    assert (
        steps["install"].skipif == "onpath git"
        and steps["install"].requires_privilege
        and steps["install"].setenv == {"B": "2"}
    )


def test_global_lifecycle_with_selection_keys() -> None:
    r = recipe(
        Manifests=[{"Platform": {"os": "linux"}, "Selections": ["fast"]}, {"Lifecycle": {}}],
        Lifecycle={
            "fast": {"run": "fast run"},
            "all": {"run": "normal run"},
            "install": {"Script": {"fast": "f", "all": "a"}},
        },
    )
    steps, _, _ = r.select(LINUX_AMD64)
    assert steps["run"].script == "fast run"
    assert steps["install"].script == "a"


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"ComponentName": "A", "ComponentVersion": "1.0.0"}, "lacks RecipeFormatVersion"),
        ({**BASE, "RecipeFormatVersion": "2021-01-01"}, "2020-01-25"),
        ({**BASE, "Manifests": [{"Lifecycle": {"start": "x"}}]}, "unknown step"),
        ({**BASE, "Manifests": [{"Lifecycle": {"run": "x", "startup": "y"}}]}, "only one"),
        ({**BASE, "Manifests": [{"Artifacts": [{"Unarchive": "ZIP"}]}]}, "without URI"),
        (
            {**BASE, "Manifests": [{"Artifacts": [{"URI": "s3://b/x.tar", "Unarchive": "TAR"}]}]},
            "NONE or ZIP",
        ),
        ({**BASE, "ComponentDependencies": {"B": {"DependencyType": "MAYBE"}}}, "HARD or SOFT"),
    ],
)
def test_malformed_recipes(data: dict, fragment: str) -> None:
    with pytest.raises(RecipeError, match=fragment):
        parse_recipe(data).select(LINUX_AMD64)


def test_platform_values() -> None:
    assert platform_matches({"os": "*", "architecture": "/amd64|aarch64/"}, LINUX_AMD64)
    assert not platform_matches({"architecture": "/aarch64/"}, LINUX_AMD64)
    assert platform_matches({"os": "LINUX"}, LINUX_AMD64)
    assert not platform_matches({"custom": "x"}, LINUX_AMD64)


def test_yaml_and_json_files(tmp_path: Path) -> None:
    data = {**BASE, "Manifests": [{"Lifecycle": {"run": "echo hi"}}]}
    (tmp_path / "r.json").write_text(json.dumps(data))
    (tmp_path / "r.yaml").write_text(
        "RecipeFormatVersion: '2020-01-25'\nComponentName: com.example.A\nComponentVersion: '1.0.0'\n"
        "Manifests:\n  - Lifecycle:\n      run: echo hi\n"
    )
    assert load_recipe(tmp_path / "r.json").raw == load_recipe(tmp_path / "r.yaml").raw
    (tmp_path / "bad.yaml").write_text("a: [")
    with pytest.raises(RecipeError, match="not valid YAML"):
        load_recipe(tmp_path / "bad.yaml")
