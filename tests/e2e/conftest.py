"""End-to-end fixtures: the agent component built for a device Python, a trained model packaged, a
deployment run through the local runner with no network.

Built once per session: the agent's wheel, the agent component (its wheelhouse is downloaded here,
with the package registry; pip's cache makes later sessions fast), the trained model. Each test
then deploys into its own Greengrass-like root with `edge-agent component run` in a subprocess,
under `unshare -n` where it works: the install steps, the agent and the client run in a network
namespace with only loopback, so nothing can reach a package index.
"""

from __future__ import annotations

import glob
import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from edge_agent.greengrass_runner import ComponentStore, Kernel
from edge_agent.packager import GreengrassConfiguration, JobStore, PackagingRequest, start_job
from edge_agent.packager.agent_component import AgentComponentRequest, BuiltComponent, build_agent_component

REPO = Path(__file__).resolve().parents[2]
AGENT = "aws.iot.lookoutvision.EdgeAgent"
CLIENT = "com.lookoutvision.EdgeAgentPythonExample"
MODEL = "com.example.SyntheticParts"
MODEL_SIZE = (160, 128)
BUCKET = "anomaly-edge-e2e"
UNREACHABLE_INDEX = "http://127.0.0.1:9/simple"  # discard port: nothing answers


def find_python(version: str) -> str | None:
    """An interpreter of that CPython version with venv and ensurepip (pyenv's, else on PATH)."""
    candidates = sorted(glob.glob(f"/root/.pyenv/versions/{version}.*/bin/python"), reverse=True)
    candidates += [p for p in (shutil.which(f"python{version}"),) if p]
    for candidate in candidates:
        probe = subprocess.run(
            [candidate, "-c", "import sys, venv, ensurepip; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
        )
        if probe.returncode == 0 and probe.stdout.strip() == version:
            return candidate
    return None


def network_namespace() -> list[str]:
    """`unshare -n` when this machine allows it (root or user namespaces), else nothing."""
    if shutil.which("unshare") is None:
        return []
    probe = subprocess.run(["unshare", "-n", "cat", "/proc/net/dev"], capture_output=True, text=True)
    if probe.returncode != 0:
        return []
    interfaces = {line.split(":")[0].strip() for line in probe.stdout.splitlines()[2:]}
    assert interfaces == {"lo"}, f"unshare -n left interfaces {interfaces}"
    return ["unshare", "-n"]


@dataclass(frozen=True)
class DevicePython:
    version: str
    executable: str


@pytest.fixture(scope="session")
def agent_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel of this checkout, built offline from a copy (no build/ left in the repo)."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "src"
    source.mkdir()
    shutil.copy(REPO / "pyproject.toml", source)
    for optional in ("README.md", "LICENSE"):
        if (REPO / optional).is_file():
            shutil.copy(REPO / optional, source)
    for package_dir in ("edge_agent", "packaging"):  # packaging/: the catalogue, installed as data-files
        shutil.copytree(
            REPO / package_dir,
            source / package_dir,
            ignore=shutil.ignore_patterns("__pycache__", "*.so"),
        )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-q",
            "-w",
            str(work / "dist"),
            str(source),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = (work / "dist").glob("anomaly_edge_agent-*.whl")
    return wheel


_COMPONENTS: dict[str, BuiltComponent] = {}


@pytest.fixture(scope="session")
def build_component(agent_wheel: Path, tmp_path_factory: pytest.TempPathFactory):
    """Factory: the agent component for one device Python version, built once per session."""

    def build(python: DevicePython) -> BuiltComponent:
        if python.version not in _COMPONENTS:
            _COMPONENTS[python.version] = build_agent_component(
                AgentComponentRequest(
                    bucket=BUCKET,
                    prefix="e2e",
                    output=tmp_path_factory.mktemp(f"agent-component-{python.version}"),
                    python_versions=(python.version,),
                    wheel=agent_wheel,
                )
            )
        return _COMPONENTS[python.version]

    return build


@pytest.fixture(scope="session")
def python38() -> DevicePython:
    executable = find_python("3.8")
    if executable is None:
        pytest.skip(
            "no CPython 3.8 with venv found (pyenv's /root/.pyenv/versions/3.8.*, or python3.8 on PATH)"
        )
    return DevicePython("3.8", executable)


@pytest.fixture(scope="session")
def trained_model(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A small classification model trained on synthetic parts, plus two held-out images."""
    from edge_agent.testing.synthetic import write_synthetic_dataset
    from edge_agent.training import TrainConfig, train
    from edge_agent.training.feature_choice import Candidate
    from edge_agent.training.features import FeatureConfig

    root = tmp_path_factory.mktemp("trained")
    data = root / "dataset"
    train(
        TrainConfig(
            dataset=write_synthetic_dataset(data, 20, 8, MODEL_SIZE, (), seed=3, prefix="train-"),
            output=root / "model",
            check_minimums=False,  # below the guide's minimum counts on purpose (speed)
            evaluate=False,
            progress=False,
            features=Candidate(FeatureConfig(long_side=192)),
        )
    )
    write_synthetic_dataset(data, 1, 1, MODEL_SIZE, (), seed=4, prefix="test-")
    images = root / "images"
    images.mkdir()
    shutil.copy(data / "images" / "test-normal-0000.png", images / "normal.png")
    shutil.copy(data / "images" / "test-anomaly-0001.png", images / "anomalous.png")
    return {"model": root / "model", "images": images}


def package_model(model_dir: Path, version: str, output: Path) -> Path:
    """`edge-agent package` for x86-64 CPU: returns the output folder (recipes/, artifacts/)."""
    record = start_job(
        PackagingRequest(
            model_dir,
            GreengrassConfiguration(
                component_name=MODEL,
                component_version=version,
                target_platform={"Os": "LINUX", "Arch": "X86_64"},
            ),
            output=str(output),
        ),
        JobStore(output.parent / f"jobs-{version}.sqlite3"),
    )
    assert record.status == "SUCCEEDED", record.status_message
    return output


@pytest.fixture(scope="session")
def model_v1(trained_model: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return package_model(trained_model["model"], "1.0.0", tmp_path_factory.mktemp("model-v1") / "out")


def client_store(root: Path, agent: BuiltComponent, python: DevicePython) -> Path:
    """The sample client's recipe (depending on our model) and artifacts: script and stubs."""
    recipes, artifacts = root / "recipes", root / "artifacts" / CLIENT / "1.0.0"
    recipes.mkdir(parents=True)
    artifacts.mkdir(parents=True)
    raw = json.loads((REPO / "greengrass/client/recipe.json").read_text())
    dependencies = raw["ComponentDependencies"]
    dependencies[MODEL] = dependencies.pop("com.example.AnomalyModel")
    (recipes / f"{CLIENT}-1.0.0.json").write_text(json.dumps(raw, indent=2))
    shutil.copy(REPO / "greengrass/client/edge_agent_example.py", artifacts)
    write_client_stubs(artifacts, device_pins(agent, python), root / "protoc")
    return root


def device_pins(agent: BuiltComponent, python: DevicePython) -> list[str]:
    """The grpcio and protobuf pins the client gets from the agent's wheelhouse for that Python."""
    tag = "cp" + python.version.replace(".", "")
    with zipfile.ZipFile(agent.archive) as archive:
        pins = archive.read(f"wheelhouse/{tag}/client.txt").decode().split()
    return [p for p in pins if p.startswith(("grpcio==", "protobuf=="))]


def write_client_stubs(folder: Path, pins: list[str], tools: Path) -> None:
    """edge_agent_pb2*.py as docs/greengrass.md says: protoc of the grpcio-tools that goes with the
    device's grpcio and protobuf (newer generated code refuses an older runtime), installed beside this
    interpreter."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            "--target",
            str(tools),
            "grpcio-tools",
            *pins,
        ],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            "-I",
            str(REPO / "proto"),
            f"--python_out={folder}",
            f"--grpc_python_out={folder}",
            str(REPO / "proto/edge-agent.proto"),
        ],
        check=True,
        env={**os.environ, "PYTHONPATH": str(tools)},
    )


class Deployment:
    """A Greengrass-like root deployed with `edge-agent component run` in a subprocess (offline)."""

    def __init__(self, root: Path, stores: list[Path], python: DevicePython) -> None:
        self.root = root
        self.stores = stores
        self.python = python
        self.socket = f"unix://{root}/agent.sock"
        self.netns = network_namespace()
        self.kernel = Kernel(
            root,
            ComponentStore(recipe_dirs=[s / "recipes" for s in stores]),
            run_as=pwd.getpwuid(os.geteuid()).pw_name,
        )

    def run(self, *components: str, merges: dict[str, dict] | None = None) -> str:
        command = [*self.netns, sys.executable, "-m", "edge_agent", "component", "run", *components]
        command += ["--root", str(self.root)]
        for store in self.stores:
            command += ["--store", str(store)]
        for name, merge in (merges or {}).items():
            command += ["--merge", f"{name}={json.dumps(merge)}"]
        env = {
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
            # The runner gives steps a clean environment (as the nucleus does), so no PIP_* variable
            # reaches them: the unreachable index goes in through PipInstallOptions (see merges()).
            # Steps run as this user, not ggc_user: the device Python under test (pyenv's, in /root) is
            # only reachable by it. tests/unit/greengrass_runner/test_run_as.py covers the user switch.
            "EDGE_AGENT_RUNNER_USER": pwd.getpwuid(os.geteuid()).pw_name,
        }
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
        logs = "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-4000:]}"
            for p in sorted((self.root / "logs").glob("*.log"))
        )
        assert done.returncode == 0, f"{done.stdout}\n{done.stderr}\n{logs}"
        return done.stdout

    def merges(self, images: Path) -> dict[str, dict]:
        return {
            AGENT: {
                "Socket": self.socket,
                "SocketGroup": "",
                "PythonCommand": self.python.executable,
                # where unshare is not available: any index pip might try answers nothing (install.py
                # passes --no-index anyway)
                "PipInstallOptions": f"--index-url {UNREACHABLE_INDEX}",
                "ExtraServeArguments": "--poll-interval 0.2",
            },
            MODEL: {"Autostart": "true", "StartTimeoutSeconds": "60", "Socket": self.socket},
            CLIENT: {
                "ModelComponent": MODEL,
                "Socket": self.socket,
                "ImagesDirectory": str(images),
                "PythonCommand": self.python.executable,
                "PipInstallOptions": f"--index-url {UNREACHABLE_INDEX}",
            },
        }

    def remove_all(self) -> None:
        self.kernel.remove_all()


@pytest.fixture
def deployment_root() -> Iterator[Path]:
    """Short path (a Unix socket path must fit in 107 bytes)."""
    root = Path(tempfile.mkdtemp(prefix="gg-", dir="/tmp"))
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)
