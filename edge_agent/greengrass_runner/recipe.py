"""Greengrass V2 component recipes: parse JSON or YAML, pick the manifest for this platform.

Keys are matched case-insensitively (the service accepts `URI`/`Uri`, `Install`/`install`) and
normalised: recipe and step keys to the reference's spelling, lifecycle step names to lower case.
Platform values and artifact URIs follow the nucleus, not a friendlier reading: a value matches
only its exact (case-sensitive) label, `/regex/`, `//` (any value), or `all`/`any` for os and
architecture (PlatformHelper in aws-greengrass-component-common); an artifact URI must be
`s3://`, `greengrass:` or `docker:` (the nucleus fails anything else with
UNSUPPORTED_ARTIFACT_SCHEME, local deployments included).
"""

from __future__ import annotations

import json
import platform as _platform
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_agent.errors import InvalidInputError
from edge_agent.greengrass_runner.versions import Version, parse_version

STEPS = ("setenv", "bootstrap", "install", "startup", "run", "shutdown", "recover")
_TOP_KEYS = [
    "RecipeFormatVersion",
    "ComponentName",
    "ComponentVersion",
    "ComponentType",
    "ComponentDescription",
    "ComponentPublisher",
    "ComponentSource",
    "ComponentConfiguration",
    "ComponentDependencies",
    "Manifests",
    "Lifecycle",
]
_STEP_KEYS = ("Script", "RequiresPrivilege", "Skipif", "Timeout", "Setenv", "BackgroundProcess")
_ARTIFACT_KEYS = ("URI", "Unarchive", "Permission", "Digest", "Algorithm")
DEFAULT_TIMEOUT_S = {
    "bootstrap": 120.0,
    "install": 120.0,
    "startup": 120.0,
    "shutdown": 15.0,
    "recover": 60.0,
}
ARTIFACT_SCHEMES = ("s3", "greengrass", "docker")
_SIMPLE_LABEL = re.compile(r"^[a-zA-Z0-9]")
_SKIPIF = re.compile(r"^!?\s*(onpath|exists)\s+\S")
_WILDCARD_KEYS = ("os", "architecture")
_ARCH = {
    "x86_64": "amd64",
    "amd64": "amd64",
    "aarch64": "aarch64",
    "arm64": "aarch64",
    "i686": "x86",
    "i386": "x86",
}


class RecipeError(InvalidInputError):
    """A recipe is malformed; the message names the component and field."""


@dataclass(frozen=True)
class Step:
    script: str
    timeout_s: float | None
    skipif: str | None = None
    setenv: dict[str, str] = field(default_factory=dict)
    requires_privilege: bool = False


@dataclass(frozen=True)
class Artifact:
    uri: str
    unarchive: str = "NONE"
    permission: dict[str, str] = field(default_factory=dict)

    @property
    def scheme(self) -> str:
        return self.uri.split(":", 1)[0].lower()

    @property
    def filename(self) -> str:
        """The file name the nucleus stores it under: the last segment of the URI's path."""
        rest = self.uri.split(":", 1)[1] if ":" in self.uri else self.uri
        return rest.rstrip("/").rsplit("/", 1)[-1]


@dataclass(frozen=True)
class Dependency:
    name: str
    requirement: str
    hard: bool = True


@dataclass(frozen=True)
class Recipe:
    name: str
    version: str
    raw: dict[str, Any]
    default_configuration: dict[str, Any]
    dependencies: tuple[Dependency, ...]

    @property
    def semver(self) -> Version:
        return parse_version(self.version)

    def select(self, host: dict[str, str]) -> tuple[dict[str, Step], dict[str, str], tuple[Artifact, ...]]:
        """Lifecycle steps, Setenv and artifacts of the first manifest this host matches."""
        manifests = self.raw.get("Manifests") or [{}]
        for manifest in manifests:
            if platform_matches(manifest.get("Platform") or {}, host):
                lifecycle = manifest.get("Lifecycle")
                if not lifecycle:
                    lifecycle = _select_global(
                        self.raw.get("Lifecycle") or {}, manifest.get("Selections") or ["all"]
                    )
                steps, setenv = _steps(self.name, lifecycle)
                artifacts = tuple(_artifact(self.name, a) for a in manifest.get("Artifacts") or [])
                return steps, setenv, artifacts
        raise RecipeError(
            f"component {self.name} {self.version} has no manifest for this platform {host}; "
            f"its manifests target {[m.get('Platform') for m in manifests]}"
        )


def host_platform(overrides: dict[str, str] | None = None) -> dict[str, str]:
    host = {
        "os": _platform.system().lower(),
        "architecture": _ARCH.get(_platform.machine().lower(), _platform.machine()),
    }
    host.update(overrides or {})
    return host


def platform_matches(wanted: dict[str, Any], host: dict[str, str]) -> bool:
    """The nucleus's rule (PlatformHelper.testPlatform): every key of the manifest's Platform must match."""
    return all(_platform_field(key, host.get(key), value) for key, value in (wanted or {}).items())


def _platform_field(name: str, label: str | None, template: Any) -> bool:
    if isinstance(template, list):  # a list of alternatives
        return any(_platform_value(name, label, item) for item in template)
    return _platform_value(name, label, template)


def _platform_value(name: str, label: str | None, template: Any) -> bool:
    if template is None:
        return label is None  # explicit "has no value"
    if label is None or not isinstance(template, str):
        return False
    if template == "//":
        return True  # "has any value"
    if len(template) > 2 and template.startswith("/") and template.endswith("/"):
        try:
            return re.fullmatch(template[1:-1], label) is not None  # Java String.matches: whole label
        except re.error as exc:
            raise RecipeError(
                f"Platform {name} {template!r} is not a valid regular expression: {exc}"
            ) from None
    if name in _WILDCARD_KEYS and template in ("all", "any"):
        return True
    if template == "*" or not _SIMPLE_LABEL.match(template):
        return False  # the nucleus reserves other symbols; `*` is not a wildcard there
    return template == label  # case-sensitive, as the nucleus compares labels


def load_recipe(path: Path) -> Recipe:
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise RecipeError(f"recipe {path} is not valid YAML: {exc}") from None
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise RecipeError(f"recipe {path} is not valid JSON: {exc}") from None
    return parse_recipe(data, source=str(path))


def parse_recipe(data: Any, source: str = "recipe") -> Recipe:
    if not isinstance(data, dict):
        raise RecipeError(f"{source} must be a JSON/YAML object")
    raw = _canonical_keys(data, _TOP_KEYS)
    for key in ("RecipeFormatVersion", "ComponentName", "ComponentVersion"):
        if key not in raw:
            raise RecipeError(f"{source} lacks {key}")
    if str(raw["RecipeFormatVersion"]) != "2020-01-25":
        raise RecipeError(
            f"{source} RecipeFormatVersion is {raw['RecipeFormatVersion']!r}; expected '2020-01-25'"
        )
    name, version = str(raw["ComponentName"]), str(raw["ComponentVersion"])
    parse_version(version)
    raw["Manifests"] = [
        _canonical_keys(m, ("Name", "Platform", "Lifecycle", "Artifacts", "Selections"))
        for m in raw.get("Manifests") or []
    ]
    configuration = _canonical_keys(raw.get("ComponentConfiguration") or {}, ("DefaultConfiguration",))
    dependencies = []
    for dep_name, spec in (raw.get("ComponentDependencies") or {}).items():
        spec = _canonical_keys(spec or {}, ("VersionRequirement", "DependencyType"))
        kind = str(spec.get("DependencyType", "HARD")).upper()
        if kind not in ("HARD", "SOFT"):
            raise RecipeError(
                f"{name} dependency {dep_name} DependencyType is {kind!r}; expected HARD or SOFT"
            )
        dependencies.append(Dependency(dep_name, str(spec.get("VersionRequirement", "*")), kind == "HARD"))
    return Recipe(
        name, version, raw, dict(configuration.get("DefaultConfiguration") or {}), tuple(dependencies)
    )


def _canonical_keys(data: Any, known: tuple[str, ...] | list[str]) -> dict[str, Any]:
    if not isinstance(data, dict):
        return {}
    lookup = {k.lower(): k for k in known}
    return {lookup.get(str(k).lower(), k): v for k, v in data.items()}


def _select_global(lifecycle: dict[str, Any], selections: list[str]) -> dict[str, Any]:
    """Top-level selection keys of a global lifecycle (keys that are not step names)."""
    if all(str(k).lower() in STEPS for k in lifecycle):
        return lifecycle
    merged: dict[str, Any] = {}
    for key, section in lifecycle.items():
        if str(key).lower() in STEPS:
            merged.setdefault(key, section)
        elif key in selections and isinstance(section, dict):
            for step, value in section.items():
                merged.setdefault(step, value)
    return merged


def _steps(component: str, lifecycle: dict[str, Any]) -> tuple[dict[str, Step], dict[str, str]]:
    steps: dict[str, Step] = {}
    setenv: dict[str, str] = {}
    for key, value in lifecycle.items():
        name = str(key).lower()
        if name not in STEPS:
            raise RecipeError(f"{component} lifecycle has unknown step {key!r}; known: {list(STEPS)}")
        if name == "setenv":
            setenv = {str(k): str(v) for k, v in (value or {}).items()}
            continue
        if isinstance(value, str):
            steps[name] = Step(value, DEFAULT_TIMEOUT_S.get(name))
            continue
        spec = _canonical_keys(value, _STEP_KEYS)
        script = spec.get("Script")
        if isinstance(script, dict):  # bottom-level selection keys
            script = script.get("all", next(iter(script.values()), None))
        if not isinstance(script, str):
            raise RecipeError(f"{component} lifecycle step {key} has no Script")
        timeout = spec.get("Timeout", DEFAULT_TIMEOUT_S.get(name))
        skipif = spec.get("Skipif")
        if skipif is not None and not _SKIPIF.match(str(skipif).strip()):
            raise RecipeError(
                f"{component} lifecycle step {key} Skipif is {skipif!r}; expected '[!]onpath EXECUTABLE' or "
                "'[!]exists FILE'"
            )
        steps[name] = Step(
            script=script,
            timeout_s=None if timeout is None else float(timeout),
            skipif=None if skipif is None else str(skipif),
            setenv={str(k): str(v) for k, v in (spec.get("Setenv") or {}).items()},
            requires_privilege=str(spec.get("RequiresPrivilege", "false")).lower() == "true",
        )
    if "startup" in steps and "run" in steps:
        raise RecipeError(f"{component} defines both startup and run; a component may define only one")
    return steps, setenv


def _artifact(component: str, data: Any) -> Artifact:
    spec = _canonical_keys(data, _ARTIFACT_KEYS)
    uri = spec.get("URI")
    if not isinstance(uri, str) or not uri:
        raise RecipeError(f"{component} has an artifact without URI: {data!r}")
    check_artifact_uri(component, uri)
    unarchive = str(spec.get("Unarchive", "NONE")).upper()
    if unarchive not in ("NONE", "ZIP"):
        raise RecipeError(f"{component} artifact {uri} Unarchive is {unarchive!r}; expected NONE or ZIP")
    permission = {
        key.lower(): str(value).upper()
        for key, value in _canonical_keys(spec.get("Permission") or {}, ("Read", "Execute")).items()
    }
    for key, value in permission.items():
        if key not in ("read", "execute") or value not in ("NONE", "OWNER", "ALL"):
            raise RecipeError(
                f"{component} artifact {uri} Permission {key}={value!r}; expected Read/Execute NONE, OWNER or ALL"
            )
    return Artifact(uri, unarchive, permission)


def nucleus_problems(raw: dict[str, Any]) -> list[str]:
    """What the nucleus would refuse or never match in a recipe, over every manifest (for linting)."""
    recipe = _canonical_keys(raw, _TOP_KEYS)
    name = str(recipe.get("ComponentName", "recipe"))
    problems: list[str] = []
    for index, manifest in enumerate(recipe.get("Manifests") or []):
        manifest = _canonical_keys(manifest, ("Name", "Platform", "Lifecycle", "Artifacts", "Selections"))
        for key, value in (manifest.get("Platform") or {}).items():
            for item in value if isinstance(value, list) else [value]:
                if not isinstance(item, str) or not _usable_platform_value(key, item):
                    problems.append(
                        f"{name} manifest {index} Platform {key}={item!r} never matches in the nucleus: use an exact "
                        "label (case-sensitive), /regex/, // (any value) or, for os and architecture, all"
                    )
        for artifact in manifest.get("Artifacts") or []:
            uri = _canonical_keys(artifact, _ARTIFACT_KEYS).get("URI")
            try:
                check_artifact_uri(name, str(uri))
            except RecipeError as exc:
                problems.append(str(exc))
    return problems


def _usable_platform_value(key: str, value: str) -> bool:
    if value == "//" or (len(value) > 2 and value.startswith("/") and value.endswith("/")):
        return True
    return bool(_SIMPLE_LABEL.match(value)) or (key in _WILDCARD_KEYS and value in ("all", "any"))


def check_artifact_uri(component: str, uri: str) -> None:
    """Refuse what the nucleus refuses (UNSUPPORTED_ARTIFACT_SCHEME), saying how to stage a local file."""
    scheme = uri.split(":", 1)[0].lower() if ":" in uri else ""
    if scheme in ARTIFACT_SCHEMES:
        return
    name = uri.rstrip("/").rsplit("/", 1)[-1] or "FILE"
    local = (
        f" To deploy a local file, give the artifact an s3:// URI ending in its file name "
        f"(s3://BUCKET/PREFIX/{name}) and put the file at <artifacts dir>/{component}/<version>/{name}: "
        "`edge-agent component run --artifacts DIR` and `greengrass-cli deployment create --artifactDir DIR` "
        "read it from there."
    )
    raise RecipeError(
        f"{component} artifact {uri!r}: the Greengrass nucleus accepts only s3://, greengrass: and docker: URIs "
        f"and fails {scheme + ':' if scheme else 'this URI'} with UNSUPPORTED_ARTIFACT_SCHEME, even for local "
        f"deployments.{local}"
    )
