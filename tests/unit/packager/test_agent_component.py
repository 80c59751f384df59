"""`edge-agent component build-agent`: the agent component for offline devices.

pip download runs for real, against a local folder of small real wheels (--no-index --find-links),
so these tests need no registry; tests/e2e downloads the real dependencies and installs them.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer

from edge_agent.cli import main as cli_main
from edge_agent.component import agent_install
from edge_agent.errors import InvalidInputError
from edge_agent.greengrass_runner.recipe import load_recipe, parse_recipe
from edge_agent.greengrass_runner.versions import satisfies
from edge_agent.packager.agent_component import (
    COMPONENT,
    PLATFORMS,
    AgentBuildError,
    AgentComponentRequest,
    build_agent_component,
    manylinux_platforms,
    read_wheel,
    requirement_sets,
    upload,
)
from edge_agent.packager.catalogue import load_catalogue
from tests.unit.component.wheels import make_wheel

REPO = Path(__file__).resolve().parents[3]
REQUIRES = (
    'numpy>=1.24; python_version < "3.9"',
    'numpy>=1.26; python_version >= "3.9"',
    "grpcio>=1.70",
    "onnxruntime>=1.19",
    'onnxruntime-gpu>=1.19; extra == "gpu"',
    'tensorrt<11,>=8.5; extra == "tensorrt"',
    'pyyaml>=6; extra == "runner"',
)


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A find-links folder standing in for PyPI: every distribution our fake wheel needs, and pip."""
    folder = tmp_path_factory.mktemp("index")
    for name, ver in [
        ("numpy", "1.24.4"),
        ("numpy", "2.0.0"),
        ("grpcio", "1.70.0"),
        ("protobuf", "5.29.6"),
        ("pillow", "10.4.0"),
        ("onnxruntime", "1.19.2"),
        ("onnxruntime-gpu", "1.19.2"),
        ("tensorrt", "10.3.0"),
        ("pip", "24.3.1"),
    ]:
        requires = ("protobuf>=5.29",) if name == "grpcio" else ()
        make_wheel(folder, name, ver, requires=requires, requires_python=">=3.9" if ver == "2.0.0" else "")
    return folder


@pytest.fixture(scope="module")
def agent_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    requires = (*REQUIRES, "pillow>=10.4")
    return make_wheel(
        tmp_path_factory.mktemp("agent"),
        "anomaly-edge-agent",
        "1.4.0",
        requires=requires,
        requires_python=">=3.8",
    )


def _request(tmp_path: Path, index: Path, wheel: Path, **fields) -> AgentComponentRequest:
    return AgentComponentRequest(
        bucket="my-artifacts",
        prefix="greengrass/",
        output=tmp_path / "out",
        wheel=wheel,
        pip_options=("--no-index", "--find-links", str(index)),
        **fields,
    )


def test_requirement_sets_resolve_markers_for_the_device_python(agent_wheel: Path) -> None:
    wheel = read_wheel(agent_wheel)
    sets = requirement_sets(wheel, "3.8", PLATFORMS["linux-x86_64"])
    assert "numpy>=1.24" in sets["base"] and "numpy>=1.26" not in sets["base"]  # python_version < 3.9
    assert not [r for r in sets["base"] if r.startswith("onnxruntime")]
    assert "onnxruntime>=1.19" in sets["cpu"]
    assert "onnxruntime-gpu>=1.19" in sets["gpu"] and "onnxruntime>=1.19" not in sets["gpu"]
    assert "tensorrt<11,>=8.5" in sets["tensorrt"] and not [r for r in sets["tensorrt"] if "onnxruntime" in r]
    assert not [r for s in sets.values() for r in s if r.startswith("pyyaml")]  # other extras stay out
    assert "numpy>=1.26" in requirement_sets(wheel, "3.12", PLATFORMS["linux-x86_64"])["base"]


def test_manylinux_tags_cover_what_ubuntu_20_04_runs() -> None:
    tags = manylinux_platforms(PLATFORMS["linux-x86_64"], "2.31")
    assert tags[0] == "manylinux_2_31_x86_64" and "manylinux_2_28_x86_64" in tags  # onnxruntime 1.19 for cp38
    assert "manylinux2014_x86_64" in tags and not [t for t in tags if "2_32" in t]
    assert all(t.endswith("aarch64") for t in manylinux_platforms(PLATFORMS["linux-aarch64"], "2.31"))


def test_build_writes_recipe_and_zip_with_proto_installer_and_pinned_sets(
    tmp_path: Path, index: Path, agent_wheel: Path
) -> None:
    built = build_agent_component(
        _request(tmp_path, index, agent_wheel, python_versions=("3.8", "3.12"), backends=("cpu", "gpu"))
    )
    assert built.version == "1.4.0" and built.sets == {
        "cp38": ["base", "client", "cpu", "gpu"],
        "cp312": ["base", "client", "cpu", "gpu"],
    }
    recipe = load_recipe(built.recipe_path)
    assert (recipe.name, recipe.version) == (COMPONENT, "1.4.0")
    assert built.recipe_path == tmp_path / "out/recipes" / f"{COMPONENT}-1.4.0.json"
    steps, _, artifacts = recipe.select({"os": "linux", "architecture": "amd64"})
    (artifact,) = artifacts
    assert artifact.uri == (
        "s3://my-artifacts/greengrass/aws.iot.lookoutvision.EdgeAgent/1.4.0/linux-x86_64/lookoutvision_edge_agent.zip"
    )
    assert artifact.unarchive == "ZIP"
    assert "lookoutvision_edge_agent/install.py" in steps["install"].script
    assert "--backend '{configuration:/Backend}'" in steps["install"].script
    with pytest.raises(Exception, match="no manifest"):
        recipe.select({"os": "linux", "architecture": "aarch64"})  # built for x86-64 only
    assert built.archive == tmp_path / "out/artifacts" / COMPONENT / "1.4.0/lookoutvision_edge_agent.zip"
    with zipfile.ZipFile(built.archive) as archive:
        names = set(archive.namelist())
        assert archive.read("protos/edge-agent.proto") == (REPO / "proto/edge-agent.proto").read_bytes()
        assert archive.read("edge-agent.proto") == archive.read("protos/edge-agent.proto")
        assert archive.read("install.py") == Path(agent_install.__file__).read_bytes()
        manifest = json.loads(archive.read("wheelhouse/wheelhouse.json"))
        cpu = archive.read("wheelhouse/cp38/cpu.txt").decode().split()
        gpu = archive.read("wheelhouse/cp38/gpu.txt").decode().split()
        client = archive.read("wheelhouse/cp38/client.txt").decode().split()
        assert archive.read("wheelhouse/cp312/base.txt").decode().split() == [
            "grpcio==1.70.0",
            "numpy==2.0.0",
            "pillow==10.4.0",
            "protobuf==5.29.6",
        ]
    assert manifest["agent_wheel"] == agent_wheel.name and f"wheelhouse/wheels/{agent_wheel.name}" in names
    assert cpu == [
        "grpcio==1.70.0",
        "numpy==1.24.4",
        "onnxruntime==1.19.2",
        "pillow==10.4.0",
        "protobuf==5.29.6",
    ]
    assert "onnxruntime-gpu==1.19.2" in gpu and "onnxruntime==1.19.2" not in gpu
    assert client == ["grpcio==1.70.0", "pillow==10.4.0", "protobuf==5.29.6"]  # the agent's own versions
    assert "wheelhouse/cp38/pip.txt" in names  # Ubuntu 20.04's venv pip predates manylinux_2_28
    # AWS's sample clients depend on the agent by these ranges; model components by the catalogue's
    for requirement in (">=1.3.0 <3.0.0", ">=0.1.0 <2.0.0", load_catalogue().agent_version_requirement):
        assert satisfies(recipe.semver, requirement), requirement
    assert built.aws_commands()[0].startswith(f"aws s3 cp {built.archive} s3://my-artifacts/greengrass/")
    assert f"create-component-version --inline-recipe fileb://{built.recipe_path}" in built.aws_commands()[1]


def test_build_refuses_what_cannot_work(tmp_path: Path, index: Path, agent_wheel: Path) -> None:
    with pytest.raises(InvalidInputError, match="onnxruntime-gpu has no aarch64 wheel"):
        build_agent_component(
            _request(tmp_path, index, agent_wheel, platform="linux-aarch64", backends=("gpu",))
        )
    with pytest.raises(InvalidInputError, match=r"expected one of 3\.8"):
        build_agent_component(_request(tmp_path, index, agent_wheel, python_versions=("3.7",)))
    with pytest.raises(InvalidInputError, match="not an S3 bucket name"):
        build_agent_component(
            AgentComponentRequest(
                bucket="YOUR-BUCKET", output=tmp_path, wheel=agent_wheel, pip_options=("--no-index",)
            )
        )
    old = make_wheel(tmp_path / "old", "anomaly-edge-agent", "0.1.0", requires_python=">=3.10")
    with pytest.raises(AgentBuildError, match=r"requires Python >=3.10: it cannot be built for 3.8"):
        build_agent_component(_request(tmp_path, index, old))
    missing = make_wheel(tmp_path / "missing", "anomaly-edge-agent", "1.4.0", requires=("nosuchpackage>=1",))
    with pytest.raises(AgentBuildError, match="pip could not download nosuchpackage"):
        build_agent_component(_request(tmp_path, index, missing))
    assert not (tmp_path / "out/recipes").exists()  # nothing half-written


def test_aarch64_build_for_jetson_joins_the_x86_build_in_one_recipe(
    tmp_path: Path, index: Path, agent_wheel: Path
) -> None:
    x86 = build_agent_component(_request(tmp_path / "x86", index, agent_wheel))
    arm = build_agent_component(
        _request(tmp_path / "arm", index, agent_wheel, platform="aarch64", add_to=x86.recipe_path)
    )
    recipe = load_recipe(arm.recipe_path)
    for arch, platform in (("amd64", "linux-x86_64"), ("aarch64", "linux-aarch64")):
        _, _, (artifact,) = recipe.select({"os": "linux", "architecture": arch})
        assert artifact.uri.endswith(f"/1.4.0/{platform}/lookoutvision_edge_agent.zip")
    with zipfile.ZipFile(arm.archive) as archive:
        assert json.loads(archive.read("wheelhouse/wheelhouse.json"))["platform"] == "linux-aarch64"
    other = make_wheel(tmp_path / "other", "anomaly-edge-agent", "1.5.0")
    with pytest.raises(InvalidInputError, match="build both platforms from the same wheel"):
        build_agent_component(
            _request(tmp_path / "bad", index, other, platform="aarch64", add_to=x86.recipe_path)
        )


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """moto in server mode on loopback (no AWS is reached)."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    for key, value in {
        "AWS_ENDPOINT_URL": f"http://{host}:{port}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    client = boto3.client("s3")
    client.create_bucket(Bucket="my-artifacts")
    try:
        yield client
    finally:
        server.stop()


def test_cli_builds_and_uploads_to_the_recipes_uri(
    s3, tmp_path: Path, index: Path, agent_wheel: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["component", "build-agent", "--bucket", "my-artifacts", "--output", str(tmp_path / "out")]
    argv += [
        "--wheel",
        str(agent_wheel),
        "--pip-option=--no-index",
        f"--pip-option=--find-links={index}",
        "--upload",
    ]
    assert cli_main(argv) == 0
    out = capsys.readouterr().out
    recipe = json.loads((tmp_path / "out/recipes" / f"{COMPONENT}-1.4.0.json").read_text())
    uri = recipe["Manifests"][0]["Artifacts"][0]["URI"]
    assert (
        f"uploaded {uri}" in out
        and "aws greengrassv2 create-component-version --inline-recipe fileb://" in out
    )
    key = uri.removeprefix("s3://my-artifacts/")
    body = s3.get_object(Bucket="my-artifacts", Key=key)["Body"].read()
    assert (
        body == (tmp_path / "out/artifacts" / COMPONENT / "1.4.0/lookoutvision_edge_agent.zip").read_bytes()
    )
    assert upload  # the library call the CLI used


def test_cli_without_bucket_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["component", "build-agent"]) == 1
    assert "needs --bucket" in capsys.readouterr().err


def test_shipped_agent_recipe_is_the_template_at_the_project_version() -> None:
    """greengrass/agent/recipe.json: one manifest per platform, a placeholder bucket, this version."""
    recipe = load_recipe(REPO / "greengrass/agent/recipe.json")
    assert recipe.version == version("anomaly-edge-agent")
    for platform in PLATFORMS.values():
        steps, _, (artifact,) = recipe.select({"os": "linux", "architecture": platform.architecture})
        assert artifact.uri.startswith("s3://YOUR-BUCKET/") and artifact.uri.endswith(
            f"/{recipe.version}/{platform.name}/lookoutvision_edge_agent.zip"
        )
        assert "--no-index" not in steps["install"].script  # install.py adds it, with the wheelhouse
    client = parse_recipe(json.loads((REPO / "greengrass/client/recipe.json").read_text()))
    (agent_dependency,) = [d for d in client.dependencies if d.name == COMPONENT]
    assert satisfies(recipe.semver, agent_dependency.requirement)
    assert "--packages client" in client.select({"os": "linux", "architecture": "amd64"})[0]["install"].script
    assert ">=" not in client.raw["Manifests"][0]["Lifecycle"]["install"]["Script"]  # pins nothing itself
