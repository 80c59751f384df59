"""What a packaging job is asked to do, validated once (guide part 2, section 2).

`GreengrassConfiguration` mirrors `Configuration.Greengrass` of StartModelPackagingJob; it can be
built from CLI flags, from the AWS CLI shorthand / JSON of `--configuration`, or both (a field
given twice is refused). `resolve` turns it into a `PackagingSpec` that cannot exist invalid.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass, field, fields
from typing import Any

from edge_agent.errors import InvalidInputError
from edge_agent.packager.catalogue import Catalogue
from edge_agent.packager.options import parse_options_text, validate_options

COMPONENT_NAME_RE = re.compile(r"^[a-zA-Z0-9\-_.]+$")
COMPONENT_NAME_MAX = 128
SEMVER_RE = re.compile(r"^([0-9]{1,6})\.([0-9]{1,6})\.([0-9]{1,6})$")
TAG_KEY_MAX, TAG_VALUE_MAX = 128, 256

_GREENGRASS_KEYS = {
    "TargetDevice": "target_device",
    "TargetPlatform": "target_platform",
    "CompilerOptions": "compiler_options",
    "S3OutputLocation": "s3_output",
    "ComponentName": "component_name",
    "ComponentVersion": "component_version",
    "ComponentDescription": "component_description",
    "Tags": "tags",
}


class ConfigurationError(InvalidInputError):
    """The packaging configuration is invalid; the message names the field."""


@dataclass(frozen=True)
class GreengrassConfiguration:
    """Raw fields as the user gave them; None means not given."""

    target_device: str | None = None
    target_platform: dict[str, Any] | None = None
    compiler_options: str | None = None
    s3_output: dict[str, Any] | None = None
    component_name: str | None = None
    component_version: str | None = None
    component_description: str | None = None
    tags: list[dict[str, Any]] | None = None

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> GreengrassConfiguration:
        """Read `{"Greengrass": {...}}` (or the inner object) as parsed from shorthand or JSON."""
        inner = document.get("Greengrass", document) if isinstance(document, dict) else None
        if not isinstance(inner, dict):
            raise ConfigurationError("--configuration must be Greengrass={...}")
        extra = set(document) - {"Greengrass"} if "Greengrass" in document else set()
        if extra:
            raise ConfigurationError(
                f"--configuration has keys {sorted(extra)} beside Greengrass; only Greengrass exists"
            )
        values: dict[str, Any] = {}
        for key, value in inner.items():
            if key not in _GREENGRASS_KEYS:
                close = difflib.get_close_matches(key, list(_GREENGRASS_KEYS), n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise ConfigurationError(
                    f"Greengrass configuration key {key!r} is unknown.{hint} Known: {sorted(_GREENGRASS_KEYS)}"
                )
            values[_GREENGRASS_KEYS[key]] = value
        if isinstance(values.get("compiler_options"), dict):
            # JSON form users sometimes write as an object rather than a string.
            values["compiler_options"] = json.dumps(values["compiler_options"])
        return cls(**values)

    def merged_with(self, other: GreengrassConfiguration) -> GreengrassConfiguration:
        """Combine CLI flags and --configuration; the same field from both is an error."""
        values: dict[str, Any] = {}
        for item in fields(self):
            mine, theirs = getattr(self, item.name), getattr(other, item.name)
            if mine is not None and theirs is not None and mine != theirs:
                raise ConfigurationError(
                    f"{item.name} is given both as a flag ({mine!r}) and in --configuration ({theirs!r}); "
                    "give it once"
                )
            values[item.name] = mine if mine is not None else theirs
        return GreengrassConfiguration(**values)


@dataclass(frozen=True)
class Target:
    """Where the component runs: AWS names (LINUX, X86_64|ARM64, NVIDIA|None) plus effective options."""

    os: str
    arch: str
    accelerator: str | None
    compiler_options: dict[str, Any]
    device: str | None = None

    @property
    def is_nvidia(self) -> bool:
        return self.accelerator == "NVIDIA"

    @property
    def label(self) -> str:
        if self.device:
            return self.device
        return f"{self.os.lower()}-{self.arch.lower()}-{(self.accelerator or 'cpu').lower()}"

    def to_json(self) -> dict[str, Any]:
        return {
            "device": self.device,
            "os": self.os,
            "arch": self.arch,
            "accelerator": self.accelerator,
            "compiler_options": self.compiler_options,
        }


@dataclass(frozen=True)
class PackagingSpec:
    """A validated packaging request."""

    component_name: str
    component_version: str
    component_description: str
    target: Target
    output: str  # local directory or s3://bucket/prefix
    tags: dict[str, str] = field(default_factory=dict)
    compiler_options_text: str | None = None


def resolve(
    config: GreengrassConfiguration, model_version: int, catalogue: Catalogue, output: str | None
) -> PackagingSpec:
    """Validate every field and apply defaults (version `<model version>.0.0`, CPU mcpu)."""
    name = config.component_name
    if not name:
        raise ConfigurationError("ComponentName is required (--component-name NAME)")
    if len(name) > COMPONENT_NAME_MAX or not COMPONENT_NAME_RE.fullmatch(name):
        raise ConfigurationError(
            f"ComponentName {name!r} must be 1..{COMPONENT_NAME_MAX} characters of [a-zA-Z0-9-_.]"
        )
    version = config.component_version or f"{model_version}.0.0"
    if not SEMVER_RE.fullmatch(version):
        raise ConfigurationError(
            f"ComponentVersion {version!r} must be major.minor.patch with 1..6 digits each, e.g. 1.0.0"
        )
    target = _resolve_target(config, catalogue)
    return PackagingSpec(
        component_name=name,
        component_version=version,
        component_description=config.component_description or f"Anomaly detection model {name}",
        target=target,
        output=_resolve_output(config, output),
        tags=_resolve_tags(config.tags),
        compiler_options_text=config.compiler_options,
    )


def _resolve_target(config: GreengrassConfiguration, catalogue: Catalogue) -> Target:
    if config.target_device and config.target_platform:
        raise ConfigurationError("give TargetDevice or TargetPlatform, not both")
    if config.target_device:
        if config.compiler_options is not None:
            raise ConfigurationError(
                "CompilerOptions must not be set with TargetDevice: the device fixes them "
                f"(TargetDevice {config.target_device!r})"
            )
        device = catalogue.devices.get(config.target_device)
        if device is None:
            close = difflib.get_close_matches(config.target_device, list(catalogue.devices), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigurationError(
                f"TargetDevice {config.target_device!r} is unknown.{hint} Known: {sorted(catalogue.devices)}"
            )
        options = validate_options(
            dict(device.get("compiler_options", {})), device.get("accelerator"), device["arch"], catalogue
        )
        return Target(device["os"], device["arch"], device.get("accelerator"), options, config.target_device)
    platform = config.target_platform
    if not platform:
        raise ConfigurationError(
            "give a target: --target-device jetson_xavier or --target-platform os=LINUX,arch=X86_64[,accelerator=NVIDIA]"
        )
    platform = {str(k).lower(): v for k, v in platform.items()}
    unknown = set(platform) - {"os", "arch", "accelerator"}
    if unknown:
        raise ConfigurationError(
            f"TargetPlatform has unknown keys {sorted(unknown)}; it takes Os, Arch, Accelerator"
        )
    os_name = str(platform.get("os", "")).upper()
    arch = str(platform.get("arch", "")).upper()
    accelerator = platform.get("accelerator")
    accelerator = str(accelerator).upper() if accelerator not in (None, "") else None
    if os_name not in catalogue.os_names:
        raise ConfigurationError(
            f"TargetPlatform Os is {platform.get('os')!r}; expected one of {sorted(catalogue.os_names)}"
        )
    if arch not in catalogue.arch_names:
        raise ConfigurationError(
            f"TargetPlatform Arch is {platform.get('arch')!r}; expected one of {sorted(catalogue.arch_names)}"
        )
    if accelerator is not None and accelerator not in catalogue.accelerators:
        raise ConfigurationError(
            f"TargetPlatform Accelerator is {platform.get('accelerator')!r}; the only accelerator is NVIDIA "
            "(leave it out for CPU)"
        )
    raw = parse_options_text(config.compiler_options) if config.compiler_options is not None else {}
    options = validate_options(raw, accelerator, arch, catalogue)
    return Target(os_name, arch, accelerator, options)


def _resolve_output(config: GreengrassConfiguration, output: str | None) -> str:
    s3 = config.s3_output
    s3_uri = None
    if s3 is not None:
        if not isinstance(s3, dict) or not s3.get("Bucket"):
            raise ConfigurationError(f"S3OutputLocation is {s3!r}; expected {{Bucket='b', Prefix='p'}}")
        prefix = str(s3.get("Prefix", "")).strip("/")
        s3_uri = f"s3://{s3['Bucket']}/{prefix}" if prefix else f"s3://{s3['Bucket']}"
    if output and s3_uri and output.rstrip("/") != s3_uri:
        raise ConfigurationError(f"--output {output!r} and S3OutputLocation {s3_uri!r} differ; give one")
    result = output or s3_uri
    if not result:
        raise ConfigurationError(
            "give --output DIR|s3://BUCKET/PREFIX (or S3OutputLocation in --configuration)"
        )
    return result


def _resolve_tags(tags: list[dict[str, Any]] | None) -> dict[str, str]:
    result: dict[str, str] = {}
    for tag in tags or []:
        if not isinstance(tag, dict) or set(tag) != {"Key", "Value"}:
            raise ConfigurationError(f"tag {tag!r} must be {{Key='k',Value='v'}}")
        key, value = str(tag["Key"]), str(tag["Value"])
        if not 1 <= len(key) <= TAG_KEY_MAX or len(value) > TAG_VALUE_MAX or key.startswith("aws:"):
            raise ConfigurationError(
                f"tag key {key!r} must be 1..{TAG_KEY_MAX} characters not starting with 'aws:', "
                f"value at most {TAG_VALUE_MAX}"
            )
        if key in result:
            raise ConfigurationError(f"tag key {key!r} is given twice")
        result[key] = value
    return result


def parse_platform_flag(text: str) -> dict[str, str]:
    """`os=LINUX,arch=X86_64[,accelerator=NVIDIA]` -> {"Os": ..., "Arch": ..., "Accelerator": ...}."""
    result: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        if not sep or not value:
            raise ConfigurationError(
                f"--target-platform part {part!r} must be key=value (os=, arch=, accelerator=)"
            )
        result[key.strip().capitalize()] = value.strip()
    return result


def parse_tag_flag(text: str) -> dict[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise ConfigurationError(f"--tag {text!r} must be KEY=VALUE")
    return {"Key": key, "Value": value}
