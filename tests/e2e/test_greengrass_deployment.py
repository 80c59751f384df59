"""End to end, offline, on the device's Python: build the agent component for x86-64 and a CPython
version (3.8, as on Jetson Xavier and Ubuntu 20.04; and this interpreter's), package a trained model,
deploy agent + model + sample client with the local recipe runner into a Greengrass-like root, read
the client's detections from its log, upgrade the model in place, remove it.

Real processes throughout: the agent installs from the wheelhouse in its ZIP into a virtual
environment of that Python (`pip --no-index`, no ExtraSitePackages), inside a network namespace with
only loopback (`unshare -n`), and serves on a real Unix socket.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

import grpc
import pytest

from edge_agent.client import EdgeAgentClient
from edge_agent.imaging.overlay import read_rgb
from edge_agent.inference import Predictor
from edge_agent.testing.onnx_models import bright_blob_package
from tests.e2e.conftest import (
    AGENT,
    CLIENT,
    MODEL,
    MODEL_SIZE,
    Deployment,
    DevicePython,
    client_store,
    find_python,
    package_model,
)

WAIT_S = 180.0  # generous: a loaded 2-core machine runs two venvs, an agent and a client


def _wait_for(condition, what: str, timeout_s: float = WAIT_S, kernel=None) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            logs = ""
            if kernel is not None:
                for name in (AGENT, MODEL, CLIENT):
                    path = kernel.log_path(name)
                    tail = path.read_text(errors="replace")[-2500:] if path.is_file() else "(none)"
                    logs += f"\n--- {name}.log\n{tail}"
            raise AssertionError(f"timed out waiting for {what}{logs}")
        time.sleep(0.1)


def _detections(log: Path) -> dict[str, dict]:
    if not log.is_file():
        return {}
    lines = [line for line in log.read_text().splitlines() if line.startswith("DetectAnomalies {")]
    return {d["image"]: d for d in (json.loads(line.split(" ", 1)[1]) for line in lines)}


def _deploy(
    python: DevicePython, build_component, model_store: Path, images: Path, root: Path, tmp_path: Path
) -> Deployment:
    agent = build_component(python)
    deployment = Deployment(
        root,
        [agent.recipe_path.parents[1], model_store, client_store(tmp_path / "client", agent, python)],
        python,
    )
    deployment.run(AGENT, f"{MODEL}=1.0.0", CLIENT, merges=deployment.merges(images))
    return deployment


def _current_python() -> DevicePython:
    return DevicePython(f"{sys.version_info[0]}.{sys.version_info[1]}", sys.executable)


@pytest.fixture(params=["3.8", "current"])
def device_python(request: pytest.FixtureRequest) -> DevicePython:
    if request.param == "current":
        return _current_python()
    return request.getfixturevalue("python38")


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_offline_install_then_client_detections_then_model_removal(
    device_python: DevicePython,
    build_component,
    model_v1: Path,
    trained_model: dict[str, Path],
    deployment_root: Path,
    tmp_path: Path,
) -> None:
    deployment = _deploy(
        device_python, build_component, model_v1, trained_model["images"], deployment_root, tmp_path
    )
    kernel = deployment.kernel
    try:
        client_log = kernel.log_path(CLIENT)
        _wait_for(lambda: len(_detections(client_log)) == 2, f"two detections in {client_log}", kernel=kernel)
        results = _detections(client_log)
        assert results["anomalous.png"]["is_anomalous"] is True
        assert results["normal.png"]["is_anomalous"] is False
        # what the deployed component answered is what the trained package predicts in-process
        predictor = Predictor.open(trained_model["model"])
        try:
            for name, logged in results.items():
                expected = predictor.predict(read_rgb(trained_model["images"] / name))
                assert logged["anomaly_score"] == pytest.approx(expected.anomaly_score, abs=1e-5)
        finally:
            predictor.close()
        assert f'model_component:"{MODEL}" status:RUNNING' in client_log.read_text()

        # Installed offline, on that Python, from the wheelhouse: the agent and the client venvs.
        agent_log = kernel.log_path(AGENT).read_text()
        assert "installed from the wheelhouse (set cpu" in agent_log, agent_log[-3000:]
        tag = "cp" + device_python.version.replace(".", "")
        assert f"{tag}, no index" in agent_log
        venv_python = kernel.work_path(AGENT) / "venv/bin/python"
        site = kernel.work_path(AGENT) / f"venv/lib/python{device_python.version}/site-packages"
        assert venv_python.exists() and (kernel.work_path(AGENT) / "venv/bin/edge-agent").is_file()
        assert not list(site.glob("onnxruntime_gpu-*.dist-info")) and list(
            site.glob("onnxruntime-*.dist-info")
        )
        assert not (site / "edge_agent_extra.pth").exists()  # nothing borrowed from this interpreter
        client_site = kernel.work_path(CLIENT) / f"venv/lib/python{device_python.version}/site-packages"
        assert list(client_site.glob("grpcio-*.dist-info")) and not list(client_site.glob("onnxruntime*"))
        # The proto at the guide's path.
        proto = (
            kernel.root
            / "packages/artifacts-unarchived"
            / AGENT
            / build_component(device_python).version
            / "lookoutvision_edge_agent/protos/edge-agent.proto"
        )
        assert "service EdgeAgent" in proto.read_text()
        assert (kernel.root / "packages/artifacts-unarchived" / MODEL / "1.0.0/model/manifest.json").is_file()
        assert (kernel.work_path(AGENT) / "models" / MODEL).is_symlink()
        if shutil.which("cc"):  # the install step built the SIGBUS guard: the agent reads frames in place
            assert "frames=in_place" in agent_log, agent_log[-3000:]

        with EdgeAgentClient(deployment.socket) as client:
            assert [m.name for m in client.list_models()] == [MODEL]
            removed = kernel.remove([MODEL], cascade=True)
            assert removed == [CLIENT, MODEL]
            assert not (kernel.work_path(AGENT) / "models" / MODEL).exists()
            _wait_for(
                lambda: MODEL not in [m.name for m in client.list_models()], "the agent to drop the model"
            )
        assert [row["name"] for row in kernel.list()] == [AGENT]
        assert kernel.list()[0]["state"] == "RUNNING"
    finally:
        deployment.remove_all()


@pytest.fixture
def upgrade_python() -> DevicePython:
    """3.8 (the device Python) where there is one, else this interpreter: the upgrade runs either way."""
    executable = find_python("3.8")
    return DevicePython("3.8", executable) if executable else _current_python()


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_model_component_upgraded_in_place_serves_the_new_model(
    upgrade_python: DevicePython,
    build_component,
    model_v1: Path,
    trained_model: dict[str, Path],
    deployment_root: Path,
    tmp_path: Path,
) -> None:
    """Same component name, version 1.0.1 with another model: the agent must answer with the new one."""
    new_model = bright_blob_package(tmp_path / "bright-blob", *MODEL_SIZE).directory
    model_v2 = package_model(new_model, "1.0.1", tmp_path / "model-v2" / "out")
    deployment = _deploy(
        upgrade_python, build_component, model_v1, trained_model["images"], deployment_root, tmp_path
    )
    deployment.stores.append(model_v2)
    image = read_rgb(trained_model["images"] / "anomalous.png")
    expected = {}
    for version, directory in (("1.0.0", trained_model["model"]), ("1.0.1", new_model)):
        predictor = Predictor.open(directory)
        try:
            expected[version] = predictor.predict(image).anomaly_score
        finally:
            predictor.close()
    assert expected["1.0.0"] != pytest.approx(expected["1.0.1"], abs=1e-3)  # the test can tell them apart
    try:
        with EdgeAgentClient(deployment.socket) as client:
            client.wait_for(MODEL, "RUNNING", timeout_s=WAIT_S)
            assert client.detect(MODEL, image).anomaly_score == pytest.approx(expected["1.0.0"], abs=1e-5)
            # the deployment revision carries the model's configuration again (Autostart), as a
            # create-deployment document does
            deployment.run(
                f"{MODEL}=1.0.1", merges={MODEL: deployment.merges(trained_model["images"])[MODEL]}
            )
            kernel = deployment.kernel
            assert [row["version"] for row in kernel.list() if row["name"] == MODEL] == ["1.0.1"]
            # The runner did its part: the same models-folder entry now holds version 1.0.1's files.
            manifest = (kernel.work_path(AGENT) / "models" / MODEL / "manifest.json").resolve()
            assert kernel.root / "packages/artifacts-unarchived" / MODEL / "1.0.1" in manifest.parents

            def new_model_answers() -> bool:
                try:
                    if client.describe_model(MODEL).status != "RUNNING":
                        return False
                    score = client.detect(MODEL, image).anomaly_score
                except grpc.RpcError:  # between the old session's stop and the new one's start
                    return False
                return score == pytest.approx(expected["1.0.1"], abs=1e-5)

            deadline = time.monotonic() + 30.0
            while not new_model_answers() and time.monotonic() < deadline:
                time.sleep(0.2)
            try:
                answered = client.detect(MODEL, image).anomaly_score
            except grpc.RpcError as exc:
                logs = {name: kernel.log_path(name).read_text()[-2000:] for name in (AGENT, MODEL)}
                raise AssertionError(
                    f"after the upgrade: {exc.code().name} {exc.details()}; logs: {logs}"
                ) from None
            assert answered == pytest.approx(expected["1.0.1"], abs=1e-5), (
                f"after the upgrade the agent answers {answered} (old model: {expected['1.0.0']}, "
                f"new model: {expected['1.0.1']})"
            )
    finally:
        deployment.remove_all()
