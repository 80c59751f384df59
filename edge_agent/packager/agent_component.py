"""Build the agent component (`aws.iot.lookoutvision.EdgeAgent`) for offline devices; upload it to S3.

Runs on a workstation with the package registry (or a mirror) in reach; the device needs none:

    edge-agent component build-agent --bucket B [--prefix P] [--platform linux-x86_64|linux-aarch64]
        [--python-version 3.8 ...] [--backend cpu|gpu|tensorrt ...] [--wheel WHEEL] [--output DIR] [--upload]

writes, in the layout that `edge-agent package` and the local runner use:

    DIR/recipes/aws.iot.lookoutvision.EdgeAgent-<version>.json
    DIR/artifacts/aws.iot.lookoutvision.EdgeAgent/<version>/lookoutvision_edge_agent.zip

The ZIP (Unarchive: ZIP) holds `protos/edge-agent.proto` (the guide's path under
artifacts-unarchived; a copy at its top too), `install.py` (edge_agent.component.agent_install) and a wheelhouse: our
wheel plus `pip download --only-binary=:all: --platform manylinux_2_X_<arch> --python-version V
--implementation cp` of its dependencies, one pinned set per Backend (see agent_install). The
component version is the wheel's version: the project version, from the package metadata.
"""

from __future__ import annotations

import email.parser
import json
import logging
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from edge_agent.errors import AgentError, InvalidInputError

log = logging.getLogger(__name__)

COMPONENT = "aws.iot.lookoutvision.EdgeAgent"
DIST = "anomaly-edge-agent"
ZIP_NAME = "lookoutvision_edge_agent.zip"
PROTO_IN_ZIP = "protos/edge-agent.proto"
PYTHON_VERSIONS = ("3.8", "3.9", "3.10", "3.11", "3.12", "3.13")
BACKENDS = ("cpu", "gpu", "tensorrt")
RUNTIMES = ("onnxruntime", "onnxruntime-gpu")
CLIENT_PACKAGES = ("grpcio", "protobuf", "pillow")
# Ubuntu 20.04 (JetPack 5 too) has glibc 2.31: wheels up to manylinux_2_31 run there.
DEFAULT_GLIBC = "2.31"
# Where `pip install` would put data files (share/anomaly-edge-agent/...), else the source checkout.
DATA_ROOTS = (Path(__file__).resolve().parents[2], Path(sys.prefix) / "share" / "anomaly-edge-agent")
TEMPLATE = Path("greengrass/agent/recipe.json")
PROTO = Path("proto/edge-agent.proto")


class AgentBuildError(AgentError):
    """The component cannot be built as asked (the message says what to change)."""


@dataclass(frozen=True)
class Platform:
    name: str  # linux-x86_64
    machine: str  # x86_64: wheel platform tags
    architecture: str  # amd64: what the Greengrass nucleus reports (Java's os.arch)


PLATFORMS = {
    "linux-x86_64": Platform("linux-x86_64", "x86_64", "amd64"),
    "linux-aarch64": Platform("linux-aarch64", "aarch64", "aarch64"),
}
PLATFORM_ALIASES = {"x86_64": "linux-x86_64", "amd64": "linux-x86_64", "x86-64": "linux-x86_64"}
PLATFORM_ALIASES.update({"aarch64": "linux-aarch64", "arm64": "linux-aarch64"})


def resolve_platform(name: str) -> Platform:
    key = name.strip().lower()
    key = PLATFORM_ALIASES.get(key.removeprefix("linux-"), key)
    if key not in PLATFORMS:
        raise InvalidInputError(f"platform {name!r} is not supported; use one of {', '.join(PLATFORMS)}")
    return PLATFORMS[key]


@dataclass(frozen=True)
class AgentComponentRequest:
    bucket: str
    output: Path
    prefix: str = "artifacts"
    platform: str = "linux-x86_64"
    python_versions: tuple[str, ...] = ("3.8",)
    backends: tuple[str, ...] = ("cpu",)
    wheel: Path | None = None  # default: built from the source checkout, else downloaded
    glibc: str = DEFAULT_GLIBC
    pip_options: tuple[str, ...] = ()  # for pip download, e.g. ("--index-url", MIRROR)
    template: Path | None = None
    add_to: Path | None = (
        None  # an earlier build's recipe (other platform, same version): one recipe for both
    )


@dataclass
class BuiltComponent:
    name: str
    version: str
    recipe_path: Path
    archive: Path
    artifact_uri: str
    sets: dict[str, list[str]] = field(default_factory=dict)  # cpXY -> set names

    def aws_commands(self) -> list[str]:
        """The aws CLI commands that publish this build (what --upload does, plus the registration)."""
        bucket_key = self.artifact_uri.removeprefix("s3://")
        return [
            f"aws s3 cp {self.archive} s3://{bucket_key}",
            f"aws greengrassv2 create-component-version --inline-recipe fileb://{self.recipe_path}",
            "aws greengrassv2 describe-component --arn "
            f"arn:aws:greengrass:$AWS_REGION:$ACCOUNT_ID:components:{self.name}:versions:{self.version} "
            "--query status.componentState   # DEPLOYABLE",
        ]


# ----- wheels and their metadata ------------------------------------------------------------------


@dataclass(frozen=True)
class WheelInfo:
    path: Path
    name: str
    version: str
    requires_python: str
    requires_dist: tuple[str, ...]


def read_wheel(path: Path) -> WheelInfo:
    try:
        with zipfile.ZipFile(path) as archive:
            (metadata_name,) = [
                n for n in archive.namelist() if re.fullmatch(r"[^/]+\.dist-info/METADATA", n)
            ]
            text = archive.read(metadata_name).decode("utf-8")
    except (OSError, zipfile.BadZipFile, ValueError) as exc:
        raise AgentBuildError(f"{path} is not a readable wheel: {exc}") from None
    message = email.parser.Parser().parsestr(text)
    return WheelInfo(
        path,
        canonicalize_name(message["Name"]),
        message["Version"],
        message.get("Requires-Python") or "",
        tuple(message.get_all("Requires-Dist") or ()),
    )


def pin_of(wheel_file: str) -> str:
    """`numpy-1.24.4-cp38-cp38-manylinux....whl` -> `numpy==1.24.4`."""
    name, version = wheel_file.split("-")[:2]
    return f"{canonicalize_name(name)}=={version}"


def target_environment(python_version: str, platform: Platform) -> dict[str, str]:
    """PEP 508 marker values of the device (pip download would use this machine's instead)."""
    return {
        "python_version": python_version,
        "python_full_version": f"{python_version}.0",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
        "implementation_version": f"{python_version}.0",
        "platform_machine": platform.machine,
        "platform_system": "Linux",
        "sys_platform": "linux",
        "os_name": "posix",
        "platform_release": "",
        "platform_version": "",
    }


def requirement_sets(wheel: WheelInfo, python_version: str, platform: Platform) -> dict[str, list[str]]:
    """Top-level requirements of each set: base (no ONNX Runtime), cpu, gpu, tensorrt; markers resolved.

    (The client set is derived from base's resolved pins at build time.)"""
    environment = target_environment(python_version, platform)
    base: list[str] = []
    runtime: list[str] = []
    extras: dict[str, list[str]] = {"gpu": [], "tensorrt": []}
    for line in wheel.requires_dist:
        requirement = Requirement(line)
        plain = f"{requirement.name}{requirement.specifier}"
        for extra, chosen in extras.items():
            marker = requirement.marker
            if marker and "extra" in str(marker) and marker.evaluate({**environment, "extra": extra}):
                chosen.append(plain)
        if requirement.marker and not requirement.marker.evaluate({**environment, "extra": ""}):
            continue
        (runtime if canonicalize_name(requirement.name) in RUNTIMES else base).append(plain)
    sets = {"base": base, "cpu": base + runtime}
    for extra, chosen in extras.items():
        if chosen:
            sets[extra] = base + chosen
    return sets


def manylinux_platforms(platform: Platform, glibc: str) -> list[str]:
    """Every manylinux tag a device with this glibc runs, newest first (pip takes them literally)."""
    major, minor = (int(part) for part in glibc.split("."))
    if major != 2 or minor < 17:
        raise InvalidInputError(f"glibc {glibc!r}: expected 2.17 or later")
    tags = [f"manylinux_2_{m}_{platform.machine}" for m in range(minor, 16, -1)]
    tags.append(f"manylinux2014_{platform.machine}")
    if platform.machine == "x86_64":
        tags += ["manylinux2010_x86_64", "manylinux1_x86_64"]
    return tags


def pip_download(
    requirements: Sequence[str],
    destination: Path,
    python_version: str,
    platform: Platform,
    glibc: str,
    options: Sequence[str] = (),
) -> list[Path]:
    """Binary wheels for the device, not this machine; returns the files (the whole closure)."""
    command = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "-q"]
    command += ["--only-binary=:all:", "--python-version", python_version, "--implementation", "cp"]
    for tag in manylinux_platforms(platform, glibc):
        command += ["--platform", tag]
    command += ["-d", str(destination), *options, *requirements]
    log.info(
        "op=pip_download python=%s platform=%s requirements=%s", python_version, platform.name, requirements
    )
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if "WARNING: Location" not in line]
        raise AgentBuildError(
            f"pip could not download {' '.join(requirements)} for CPython {python_version} on {platform.name}:\n"
            + "\n".join(lines[-12:])
        )
    return sorted(destination.glob("*.whl"))


# ----- the source files of the component ------------------------------------------------------------


def data_file(relative: Path, override: Path | None = None) -> Path:
    if override is not None:
        if not override.is_file():
            raise InvalidInputError(f"{override} does not exist")
        return override
    for root in DATA_ROOTS:
        if (root / relative).is_file():
            return root / relative
    raise AgentBuildError(f"cannot find {relative} in {[str(r) for r in DATA_ROOTS]}; run from a checkout")


def project_root() -> Path | None:
    root = DATA_ROOTS[0]
    pyproject = root / "pyproject.toml"
    if pyproject.is_file() and f'name = "{DIST}"' in pyproject.read_text(encoding="utf-8"):
        return root
    return None


def obtain_wheel(request: AgentComponentRequest, scratch: Path) -> Path:
    """The given wheel, else one built from the checkout, else this version from the registry."""
    if request.wheel is not None:
        if not request.wheel.is_file():
            raise InvalidInputError(f"--wheel {request.wheel} does not exist")
        return request.wheel
    out = scratch / "agent-wheel"
    root = project_root()
    if root is not None:  # built from a copy: no build/ or egg-info left in the checkout, no local .so
        source = scratch / "agent-source"
        source.mkdir()
        for name in ("pyproject.toml", "README.md", "LICENSE"):
            if (root / name).is_file():
                shutil.copy2(root / name, source / name)
        for folder in ("edge_agent", "packaging"):
            ignore = shutil.ignore_patterns("__pycache__", "*.so", "*.pyc")
            shutil.copytree(root / folder, source / folder, ignore=ignore)
        command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
        command += ["--no-index", "-w", str(out), str(source)]
    else:
        from importlib.metadata import version

        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q"]
        command += ["-d", str(out), *request.pip_options, f"{DIST}=={version(DIST)}"]
    done = subprocess.run(command, capture_output=True, text=True)
    wheels = sorted(out.glob("anomaly_edge_agent-*.whl"))
    if done.returncode != 0 or len(wheels) != 1:
        raise AgentBuildError(
            f"cannot obtain the agent's wheel ({' '.join(command)}):\n{done.stderr[-2000:]}"
        )
    return wheels[0]


def render_recipe(template: dict, version: str, platform: Platform, artifact_uri: str) -> dict:
    """The template's lifecycle, one manifest for this platform, its ZIP, this version."""
    recipe = json.loads(json.dumps(template))
    manifest = next(
        (
            m
            for m in recipe["Manifests"]
            if m.get("Platform", {}).get("architecture") == platform.architecture
        ),
        recipe["Manifests"][0],
    )
    manifest = {
        **manifest,
        "Name": platform.name,
        "Platform": {"os": "linux", "architecture": platform.architecture},
        "Artifacts": [
            {"URI": artifact_uri, "Unarchive": "ZIP", "Permission": {"Read": "ALL", "Execute": "NONE"}}
        ],
    }
    recipe["ComponentVersion"] = version
    recipe["Manifests"] = [manifest]
    return recipe


def other_manifests(path: Path, version: str, platform: Platform) -> list[dict]:
    """The manifests of an earlier build for the other platform(s), to publish one recipe for a mixed fleet."""
    try:
        earlier = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidInputError(f"--add-to {path}: {exc}") from None
    if earlier.get("ComponentName") != COMPONENT or earlier.get("ComponentVersion") != version:
        raise InvalidInputError(
            f"--add-to {path} is {earlier.get('ComponentName')} {earlier.get('ComponentVersion')}, "
            f"not {COMPONENT} {version}: build both platforms from the same wheel"
        )
    return [
        m
        for m in earlier.get("Manifests", [])
        if m.get("Platform", {}).get("architecture") != platform.architecture
    ]


def artifact_uri(bucket: str, prefix: str, version: str, platform: Platform) -> str:
    if not re.fullmatch(r"[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]", bucket) or bucket == "your-bucket":
        raise InvalidInputError(f"--bucket {bucket!r} is not an S3 bucket name (3-63 of a-z 0-9 . -)")
    key = "/".join(part for part in (prefix.strip("/"), COMPONENT, version, platform.name, ZIP_NAME) if part)
    return f"s3://{bucket}/{key}"


# ----- the build --------------------------------------------------------------------------------------


def build_agent_component(request: AgentComponentRequest) -> BuiltComponent:
    platform = resolve_platform(request.platform)
    artifact_uri(request.bucket, request.prefix, "0.0.0", platform)  # a bad bucket fails before the downloads
    backends = tuple(dict.fromkeys(b.strip().lower() for b in request.backends)) or ("cpu",)
    for backend in backends:
        if backend not in BACKENDS:
            raise InvalidInputError(f"--backend {backend!r}: expected one of {', '.join(BACKENDS)}")
    if "gpu" in backends and platform.machine == "aarch64":
        raise InvalidInputError(
            "onnxruntime-gpu has no aarch64 wheel on PyPI: for a Jetson build with --backend cpu and set the "
            "agent's ExtraSitePackages to where NVIDIA's onnxruntime-gpu build is installed (docs/greengrass.md)"
        )
    pythons = tuple(dict.fromkeys(v.strip() for v in request.python_versions))
    for python in pythons:
        if python not in PYTHON_VERSIONS:
            raise InvalidInputError(
                f"--python-version {python!r}: expected one of {', '.join(PYTHON_VERSIONS)}"
            )
    template = json.loads(data_file(TEMPLATE, request.template).read_text(encoding="utf-8"))
    with tempfile.TemporaryDirectory(prefix="agent-component-") as scratch_name:
        scratch = Path(scratch_name)
        wheel = read_wheel(obtain_wheel(request, scratch))
        if wheel.name != DIST:
            raise InvalidInputError(f"--wheel {wheel.path.name} is {wheel.name}, not {DIST}")
        for python in pythons:
            if wheel.requires_python and python not in SpecifierSet(wheel.requires_python):
                raise AgentBuildError(
                    f"{DIST} {wheel.version} requires Python {wheel.requires_python}: it cannot be built for {python}"
                )
        stage = scratch / "lookoutvision_edge_agent"
        wheels = stage / "wheelhouse" / "wheels"
        wheels.mkdir(parents=True)
        shutil.copy2(wheel.path, wheels / wheel.path.name)
        (stage / "protos").mkdir()
        shutil.copy2(data_file(PROTO), stage / PROTO_IN_ZIP)
        shutil.copy2(data_file(PROTO), stage / PROTO.name)  # the guide also names the folder itself
        shutil.copy2(
            Path(__file__).resolve().parents[1] / "component" / "agent_install.py", stage / "install.py"
        )
        built_sets = {
            "cp" + python.replace(".", ""): _download_sets(
                request, wheel, python, platform, backends, stage / "wheelhouse", scratch
            )
            for python in pythons
        }
        manifest = {
            "component": COMPONENT,
            "version": wheel.version,
            "platform": platform.name,
            "glibc": request.glibc,
            "agent_wheel": wheel.path.name,
            "sets": built_sets,
        }
        (stage / "wheelhouse" / "wheelhouse.json").write_text(json.dumps(manifest, indent=2) + "\n")
        artifacts = request.output / "artifacts" / COMPONENT / wheel.version
        artifacts.mkdir(parents=True, exist_ok=True)
        archive = artifacts / ZIP_NAME
        _write_zip(stage, archive)
    uri = artifact_uri(request.bucket, request.prefix, wheel.version, platform)
    recipe = render_recipe(template, wheel.version, platform, uri)
    if request.add_to is not None:
        recipe["Manifests"] = [
            *other_manifests(request.add_to, wheel.version, platform),
            *recipe["Manifests"],
        ]
    recipes = request.output / "recipes"
    recipes.mkdir(parents=True, exist_ok=True)
    recipe_path = recipes / f"{COMPONENT}-{wheel.version}.json"
    recipe_path.write_text(json.dumps(recipe, indent=2) + "\n", encoding="utf-8")
    log.info("op=build_agent version=%s platform=%s archive=%s", wheel.version, platform.name, archive)
    return BuiltComponent(COMPONENT, wheel.version, recipe_path, archive, uri, built_sets)


def _download_sets(
    request: AgentComponentRequest,
    wheel: WheelInfo,
    python: str,
    platform: Platform,
    backends: tuple[str, ...],
    wheelhouse: Path,
    scratch: Path,
) -> list[str]:
    """Download every set for one Python into wheelhouse/wheels, write wheelhouse/cpXY/<set>.txt."""
    tag = "cp" + python.replace(".", "")
    (wheelhouse / tag).mkdir()
    sets = requirement_sets(wheel, python, platform)
    wanted = ["base", "client", "pip", *backends]
    base_pins: list[str] = []
    for name in wanted:
        if name == "pip":
            top = ["pip"]
        elif name == "client":  # the sample client: the agent's own grpcio, protobuf and Pillow
            top = [p for p in base_pins if p.split("==")[0] in CLIENT_PACKAGES]
        elif name not in sets:
            raise AgentBuildError(f"{DIST} {wheel.version} declares no '{name}' extra")
        else:
            top = sets[name]
        folder = scratch / "download" / tag / name
        folder.mkdir(parents=True)
        files = pip_download(top, folder, python, platform, request.glibc, request.pip_options) if top else []
        names = {pin_of(f.name).split("==")[0] for f in files}
        if set(RUNTIMES) <= names:
            raise AgentBuildError(f"set {name} for {python} pulls both onnxruntime and onnxruntime-gpu")
        for file in files:
            if not (wheelhouse / "wheels" / file.name).exists():
                shutil.move(str(file), wheelhouse / "wheels" / file.name)
        pins = sorted(pin_of(f.name) for f in files)
        if name == "base":
            base_pins = pins
        (wheelhouse / tag / f"{name}.txt").write_text("\n".join(pins) + "\n", encoding="utf-8")
    return [name for name in wanted if name != "pip"]


def _write_zip(stage: Path, archive: Path) -> None:
    """Wheels are stored (already compressed); written under a temporary name, then renamed."""
    partial = archive.with_name(f".{archive.name}.partial")
    with zipfile.ZipFile(partial, "w") as handle:
        for path in sorted(stage.rglob("*")):
            if path.is_file():
                method = zipfile.ZIP_STORED if path.suffix == ".whl" else zipfile.ZIP_DEFLATED
                handle.write(path, path.relative_to(stage).as_posix(), compress_type=method)
    partial.replace(archive)


def upload(built: BuiltComponent, client: object | None = None) -> str:
    """Put the ZIP where the recipe's URI says (boto3; AWS_ENDPOINT_URL for S3-compatible servers)."""
    from edge_agent.packager.output import S3Output

    bucket, _, key = built.artifact_uri.removeprefix("s3://").partition("/")
    return S3Output(f"s3://{bucket}", client=client).put_file(key, built.archive)
