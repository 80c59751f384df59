"""The agent component's offline install (install.py in its ZIP): which set for which Backend, and
never onnxruntime beside onnxruntime-gpu. Real pip in a real venv, with small real wheels standing in
for the ONNX Runtimes (the real GPU wheel is 200+ MB and needs a GPU to mean anything)."""

from __future__ import annotations

import json
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from edge_agent.component import agent_install
from edge_agent.component.agent_install import InstallError, choose_set
from tests.unit.component.wheels import make_wheel

TAG = agent_install.python_tag()
MANIFEST = {"sets": {"cp38": ["base", "client", "cpu"], "cp311": ["base", "client", "cpu", "gpu"]}}


def test_set_follows_the_backend_python_and_extra_site_packages() -> None:
    assert choose_set(MANIFEST, "cp38", "cpu", "agent", "") == "cpu"
    assert choose_set(MANIFEST, "cp311", "gpu", "agent", "") == "gpu"
    assert choose_set(MANIFEST, "cp38", "anything", "client", "") == "client"
    # Jetson: no onnxruntime-gpu/TensorRT wheels in the component; they come pre-installed
    assert choose_set(MANIFEST, "cp38", "tensorrt", "agent", "/usr/lib/python3.8/dist-packages") == "base"
    with pytest.raises(InstallError, match=r"built without its wheels.*--backend gpu.*ExtraSitePackages"):
        choose_set(MANIFEST, "cp38", "gpu", "agent", "")
    with pytest.raises(
        InstallError, match=r"no wheels for this Python \(cp312.*cp311, cp38.*--python-version 3.12"
    ):
        choose_set(MANIFEST, "cp312", "cpu", "agent", "")
    with pytest.raises(InstallError, match="expected one of cpu, gpu, tensorrt"):
        choose_set(MANIFEST, "cp38", "cuda", "agent", "")


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("wheelhouse")
    wheels = root / "wheels"
    make_wheel(wheels, "fakedep", "1.0")
    make_wheel(wheels, "onnxruntime", "1.0")
    make_wheel(wheels, "onnxruntime-gpu", "1.0", module="onnxruntime")  # the real one is the same module
    agent = make_wheel(wheels, "anomaly-edge-agent", "1.4.0", requires=("fakedep>=1.0", "onnxruntime>=1.0"))
    (root / TAG).mkdir()
    for name, pins in {
        "base": ["fakedep==1.0"],
        "cpu": ["fakedep==1.0", "onnxruntime==1.0"],
        "gpu": ["fakedep==1.0", "onnxruntime-gpu==1.0"],
        "client": ["fakedep==1.0"],
    }.items():
        (root / TAG / f"{name}.txt").write_text("\n".join(pins) + "\n")
    sets = {TAG: ["base", "client", "cpu", "gpu"]}
    (root / "wheelhouse.json").write_text(json.dumps({"agent_wheel": agent.name, "sets": sets}))
    return root


@pytest.fixture(scope="module")
def device_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("venv") / "venv"
    venv.create(path, with_pip=True)
    return path


def _install(venv_dir: Path, wheelhouse: Path, *args: str) -> subprocess.CompletedProcess[str]:
    script = Path(agent_install.__file__)
    return subprocess.run(
        [str(venv_dir / "bin/python"), str(script), "--wheelhouse", str(wheelhouse), *args],
        capture_output=True,
        text=True,
        env={
            "PATH": "/usr/bin:/bin",
            "PIP_INDEX_URL": "http://127.0.0.1:9/simple",
            "PIP_FIND_LINKS": "/nowhere",
        },
    )


def _installed(venv_dir: Path) -> set[str]:
    code = "from importlib import metadata; print('\\n'.join(d.metadata['Name'] for d in metadata.distributions()))"
    out = subprocess.run(
        [str(venv_dir / "bin/python"), "-c", code], capture_output=True, text=True, check=True
    )
    return set(out.stdout.split())


def test_backend_switch_swaps_the_onnx_runtimes_and_never_keeps_both(
    device_venv: Path, wheelhouse: Path
) -> None:
    done = _install(device_venv, wheelhouse, "--backend", "cpu")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "--no-index" in done.stdout and f"set cpu, {TAG}, no index" in done.stdout
    installed = _installed(device_venv)
    assert {
        "anomaly-edge-agent",
        "fakedep",
        "onnxruntime",
    } <= installed and "onnxruntime-gpu" not in installed

    done = _install(device_venv, wheelhouse, "--backend", "gpu")  # the deployment changed Backend
    assert done.returncode == 0, done.stdout + done.stderr
    installed = _installed(device_venv)
    assert "onnxruntime-gpu" in installed and "onnxruntime" not in installed
    assert "uninstall -y onnxruntime" in done.stdout

    done = _install(device_venv, wheelhouse, "--backend", "cpu")
    assert done.returncode == 0, done.stdout + done.stderr
    installed = _installed(device_venv)
    assert "onnxruntime" in installed and "onnxruntime-gpu" not in installed


def test_preinstalled_runtime_through_extra_site_packages(
    device_venv: Path, wheelhouse: Path, tmp_path: Path
) -> None:
    """Jetson's way: the gpu set is not built; onnxruntime-gpu comes from a folder NVIDIA's wheel went into."""
    only_cpu = tmp_path / "wheelhouse"
    only_cpu.mkdir()
    (only_cpu / "wheels").symlink_to(wheelhouse / "wheels")
    (only_cpu / TAG).symlink_to(wheelhouse / TAG)
    manifest = json.loads((wheelhouse / "wheelhouse.json").read_text())
    manifest["sets"] = {TAG: ["base", "client", "cpu"]}
    (only_cpu / "wheelhouse.json").write_text(json.dumps(manifest))
    nvidia = tmp_path / "nvidia-site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-index",
            "--no-deps",
            "--target",
            str(nvidia),
            str(next((wheelhouse / "wheels").glob("onnxruntime_gpu-*.whl"))),
        ],
        check=True,
        env={"PATH": "/usr/bin:/bin", "PIP_CONFIG_FILE": "/dev/null"},
    )

    done = _install(device_venv, only_cpu, "--backend", "gpu")
    assert done.returncode == 1 and "built without its wheels" in done.stderr  # no runtime anywhere: say so

    done = _install(device_venv, only_cpu, "--backend", "gpu", "--extra-site-packages", str(nvidia))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "set base" in done.stdout
    installed = _installed(device_venv)
    assert "onnxruntime-gpu" in installed and "onnxruntime" not in installed  # one, from the extra folder

    # the extra folder also holds the CPU runtime: both visible, which hides CUDA: refused
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-index",
            "--no-deps",
            "--target",
            str(nvidia),
            str(next((wheelhouse / "wheels").glob("onnxruntime-1.0-*.whl"))),
        ],
        check=True,
        env={"PATH": "/usr/bin:/bin", "PIP_CONFIG_FILE": "/dev/null"},
    )
    done = _install(device_venv, only_cpu, "--backend", "gpu", "--extra-site-packages", str(nvidia))
    assert done.returncode == 1 and "both onnxruntime and onnxruntime-gpu" in done.stderr

    # ExtraSitePackages unset again: its .pth goes, and the cpu set comes back
    done = _install(device_venv, only_cpu, "--backend", "cpu")
    assert done.returncode == 0, done.stdout + done.stderr
    assert not list(device_venv.glob("lib/python*/site-packages/edge_agent_extra.pth"))
    assert "onnxruntime" in _installed(device_venv) and "onnxruntime-gpu" not in _installed(device_venv)


def test_a_missing_or_foreign_wheelhouse_is_a_clear_error(device_venv: Path, tmp_path: Path) -> None:
    done = _install(device_venv, tmp_path, "--backend", "cpu")
    assert done.returncode == 1 and "wheelhouse.json is missing" in done.stderr
