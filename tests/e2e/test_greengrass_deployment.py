"""End to end: train a small model, package it for x86 CPU, deploy agent + model + sample client with the local
recipe runner into a temporary Greengrass-like root, read the client's detections from its log,
then remove the model component and check the agent no longer lists it.

Real processes throughout: the agent is installed from a wheel of this checkout into a virtual
environment in its work folder (offline: --no-index --no-deps, this interpreter's site-packages
reached through the recipe's ExtraSitePackages option), and serves on a real Unix socket.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_agent.client import EdgeAgentClient
from edge_agent.greengrass_runner import (
    ComponentStore,
    ConfigurationUpdate,
    Kernel,
    load_recipe,
    parse_recipe,
)
from edge_agent.imaging.overlay import read_rgb
from edge_agent.inference import Predictor
from edge_agent.packager import GreengrassConfiguration, JobStore, PackagingRequest, start_job
from edge_agent.testing.synthetic import write_synthetic_dataset
from edge_agent.training import TrainConfig, train
from edge_agent.training.features import FeatureConfig

REPO = Path(__file__).resolve().parents[2]
AGENT = "aws.iot.lookoutvision.EdgeAgent"
CLIENT = "com.lookoutvision.EdgeAgentPythonExample"
MODEL = "com.example.SyntheticParts"
MODEL_SIZE = (160, 128)
WAIT_S = 90.0


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
            REPO / package_dir, source / package_dir, ignore=shutil.ignore_patterns("__pycache__")
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


def _wait_for(condition, what: str, timeout_s: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


@pytest.fixture
def deployment(tmp_path: Path, agent_wheel: Path) -> Iterator[dict]:
    # Model: train a small classification model on synthetic parts, package it for x86 CPU.
    data = tmp_path / "dataset"
    train(
        TrainConfig(
            dataset=write_synthetic_dataset(data, 20, 8, MODEL_SIZE, (), seed=3, prefix="train-"),
            output=tmp_path / "model",
            check_minimums=False,  # below the guide's minimum counts on purpose (speed)
            evaluate=False,
            progress=False,
            features=FeatureConfig(long_side=192),
        )
    )
    output = tmp_path / "components"
    started = time.perf_counter()
    record = start_job(
        PackagingRequest(
            tmp_path / "model",
            GreengrassConfiguration(component_name=MODEL, target_platform={"Os": "LINUX", "Arch": "X86_64"}),
            output=str(output),
        ),
        JobStore(tmp_path / "jobs.sqlite3"),
    )
    assert record.status == "SUCCEEDED", record.status_message
    packaging_s = time.perf_counter() - started

    # Local component store: the packaging output plus the agent and client artifacts.
    artifacts = tmp_path / "store" / "artifacts"
    agent_dir = artifacts / AGENT / load_recipe(REPO / "greengrass/agent/recipe.json").version
    agent_dir.mkdir(parents=True)
    shutil.copy(agent_wheel, agent_dir)
    shutil.copy(REPO / "proto/edge-agent.proto", agent_dir)
    client_dir = artifacts / CLIENT / "1.0.0"
    client_dir.mkdir(parents=True)
    shutil.copy(REPO / "greengrass/client/edge_agent_example.py", client_dir)
    # The client's stubs, generated from the proto as the guide tells users to (edge_agent_pb2*.py).
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            "-I",
            str(REPO / "proto"),
            f"--python_out={client_dir}",
            f"--grpc_python_out={client_dir}",
            str(REPO / "proto/edge-agent.proto"),
        ],
        check=True,
    )
    client_raw = json.loads((REPO / "greengrass/client/recipe.json").read_text())
    client_raw["ComponentDependencies"] = {MODEL: {"VersionRequirement": ">=1.0.0", "DependencyType": "HARD"}}

    # Two held-out images (another seed) for the sample client to send.
    write_synthetic_dataset(data, 1, 1, MODEL_SIZE, (), seed=4, prefix="test-")
    images = tmp_path / "images"
    images.mkdir()
    shutil.copy(data / "images" / "test-normal-0000.png", images / "normal.png")
    shutil.copy(data / "images" / "test-anomaly-0001.png", images / "anomalous.png")

    socket = f"unix://{tmp_path}/agent.sock"
    bin_dir = str(Path(sys.executable).parent)
    kernel = Kernel(
        tmp_path / "greengrass" / "v2",
        ComponentStore(
            recipe_dirs=[REPO / "greengrass/agent", output / "recipes"],
            artifact_dirs=[artifacts, output / "artifacts"],
            extra=[parse_recipe(client_raw)],
        ),
        env={"PATH": f"{bin_dir}:/usr/bin:/bin"},
    )
    updates = {
        AGENT: ConfigurationUpdate(
            merge={
                "Socket": socket,
                "SocketGroup": "",
                "PythonCommand": sys.executable,
                "PipInstallOptions": "--no-index --no-deps",
                "ExtraSitePackages": sysconfig.get_paths()["purelib"],
                "ExtraServeArguments": "--poll-interval 0.2",
            }
        ),
        MODEL: ConfigurationUpdate(merge={"Autostart": "true", "StartTimeoutSeconds": "60"}),
        CLIENT: ConfigurationUpdate(
            merge={
                "ModelComponent": MODEL,
                "Socket": socket,
                "ImagesDirectory": str(images),
                "PythonCommand": sys.executable,
                "ExtraSitePackages": sysconfig.get_paths()["purelib"],  # grpcio, protobuf, Pillow offline
            }
        ),
    }
    try:
        started = time.perf_counter()
        order = kernel.deploy({AGENT: "*", MODEL: "1.0.0", CLIENT: "*"}, updates)
        yield {
            "kernel": kernel,
            "order": order,
            "socket": socket,
            "packaging_s": packaging_s,
            "model_dir": tmp_path / "model",
            "images": images,
            "deploy_s": time.perf_counter() - started,
        }
    finally:
        kernel.remove_all()


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_client_component_logs_detections_then_model_removal_reaches_agent(deployment: dict) -> None:
    kernel: Kernel = deployment["kernel"]
    assert deployment["order"] == [AGENT, MODEL, CLIENT]
    client_log = kernel.log_path(CLIENT)

    def detections() -> dict[str, dict]:
        if not client_log.is_file():
            return {}
        lines = [line for line in client_log.read_text().splitlines() if line.startswith("DetectAnomalies {")]
        return {d["image"]: d for d in (json.loads(line.split(" ", 1)[1]) for line in lines)}

    _wait_for(lambda: len(detections()) == 2, f"two detections in {client_log}")
    results = detections()
    assert results["anomalous.png"]["is_anomalous"] is True
    assert results["normal.png"]["is_anomalous"] is False
    # what the deployed component answered is what the trained package predicts in-process
    predictor = Predictor.open(deployment["model_dir"])
    try:
        for name, logged in results.items():
            expected = predictor.predict(read_rgb(deployment["images"] / name))
            assert logged["anomaly_score"] == pytest.approx(expected.anomaly_score, abs=1e-5)
    finally:
        predictor.close()
    assert f'model_component:"{MODEL}" status:RUNNING' in client_log.read_text()
    # Greengrass layout: unarchived model, component logs, agent venv in its work folder.
    assert (kernel.root / "packages/artifacts-unarchived" / MODEL / "1.0.0/model/manifest.json").is_file()
    assert (kernel.work_path(AGENT) / "venv/bin/edge-agent").is_file()
    assert (kernel.work_path(CLIENT) / "venv/bin/python").exists()
    assert (kernel.work_path(AGENT) / "models" / MODEL).is_symlink()
    if shutil.which("cc"):  # the install step built the SIGBUS guard: the agent read frames in place
        agent_log = kernel.log_path(AGENT).read_text()
        assert "frames=in_place" in agent_log, agent_log[-3000:]

    with EdgeAgentClient(deployment["socket"]) as client:
        assert [m.name for m in client.list_models()] == [MODEL]
        removed = kernel.remove([MODEL], cascade=True)
        assert removed == [CLIENT, MODEL]
        assert not (kernel.work_path(AGENT) / "models" / MODEL).exists()
        _wait_for(lambda: MODEL not in [m.name for m in client.list_models()], "the agent to drop the model")
    assert [row["name"] for row in kernel.list()] == [AGENT]
    assert kernel.list()[0]["state"] == "RUNNING"
