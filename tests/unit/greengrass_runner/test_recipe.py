"""Recipe parsing: JSON/YAML, case-insensitive keys, manifest selection by platform, global lifecycle."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge_agent.greengrass_runner.recipe import (
    RecipeError,
    load_recipe,
    nucleus_problems,
    parse_recipe,
    platform_matches,
)

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
        ({**BASE, "Manifests": [{"Artifacts": [{"URI": "file:///m.zip"}]}]}, "UNSUPPORTED_ARTIFACT_SCHEME"),
        ({**BASE, "Manifests": [{"Lifecycle": {"run": {"Script": "x", "Skipif": "which git"}}}]}, "Skipif"),
        (
            {**BASE, "Manifests": [{"Artifacts": [{"URI": "s3://b/m", "Permission": {"Read": "EVERYONE"}}]}]},
            "NONE, OWNER or ALL",
        ),
    ],
)
def test_malformed_recipes(data: dict, fragment: str) -> None:
    with pytest.raises(RecipeError, match=fragment):
        parse_recipe(data).select(LINUX_AMD64)


@pytest.mark.parametrize(
    ("wanted", "matches"),
    [
        ({"os": "linux", "architecture": "/amd64|aarch64/"}, True),
        ({"architecture": "/aarch64/"}, False),
        ({"architecture": "/amd/"}, False),  # a regex must match the whole label (Java String.matches)
        ({"os": "LINUX"}, False),  # labels compare case-sensitively, as the nucleus compares them
        ({"os": "Linux"}, False),
        ({"os": "all", "architecture": "any"}, True),  # AWS's C++ sample client recipe uses os: all
        ({"os": "//"}, True),  # "has any value"
        ({"os": "*"}, False),  # PlatformHelper reserves labels that do not start [a-zA-Z0-9]: never a match
        ({"custom": "x"}, False),  # an attribute the device does not have
        ({"custom": "all"}, False),  # all/any are wildcards for os and architecture only
        ({"custom": None}, True),  # explicit "has no value"
        ({"architecture": ["aarch64", "amd64"]}, True),  # a list is alternatives
        ({}, True),
    ],
)
def test_platform_values_follow_the_nucleus(wanted: dict, matches: bool) -> None:
    assert platform_matches(wanted, LINUX_AMD64) is matches


def test_a_bad_platform_regex_is_a_recipe_error() -> None:
    with pytest.raises(RecipeError, match="not a valid regular expression"):
        platform_matches({"architecture": "/amd64(/"}, LINUX_AMD64)


def test_nucleus_problems_lists_what_would_never_deploy() -> None:
    raw = {
        **BASE,
        "Manifests": [
            {"Platform": {"os": "*"}, "Artifacts": [{"URI": "file:///x/model.zip"}]},
            {
                "Platform": {"os": "all"},
                "Artifacts": [{"URI": "s3://b/p/model.zip"}, {"URI": "docker:repo/img:1"}],
            },
        ],
    }
    problems = nucleus_problems(raw)
    assert len(problems) == 2
    assert "os='*' never matches" in problems[0] and "UNSUPPORTED_ARTIFACT_SCHEME" in problems[1]


def test_artifact_file_names_and_permissions() -> None:
    r = recipe(
        Manifests=[
            {
                "Artifacts": [
                    {"URI": "s3://bucket/a/b/model.zip", "Permission": {"Read": "ALL", "Execute": "OWNER"}},
                    {"URI": "greengrass:helper.py"},
                ]
            }
        ]
    )
    _, _, artifacts = r.select(LINUX_AMD64)
    assert [(a.scheme, a.filename, a.permission) for a in artifacts] == [
        ("s3", "model.zip", {"read": "ALL", "execute": "OWNER"}),
        ("greengrass", "helper.py", {}),
    ]


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
