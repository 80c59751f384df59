"""Device-side lifecycle steps of a model component: install view, CPU checks, link and unlink, autostart."""

from __future__ import annotations

import json
import os
import shutil
import sys
import zipfile
from pathlib import Path

import pytest

from edge_agent.component.model import (
    cpu_flags,
    install_view,
    link_model,
    main,
    missing_cpu_features,
    models_directory,
    unlink_model,
    warn_backend_mismatch,
)

# The packaging job is workstation code (Python >= 3.10, yaml, onnx); these steps also run on 3.8.
WORKSTATION = sys.version_info >= (3, 10)


@pytest.fixture
def unarchived(blob_model: Path, tmp_path: Path) -> Path:
    """A model component's unarchived artifact: the packaging job's ZIP where it runs, else its contents."""
    target = tmp_path / "artifacts-unarchived" / "model"
    if WORKSTATION:
        from edge_agent.packager import GreengrassConfiguration, JobStore, PackagingRequest, start_job

        record = start_job(
            PackagingRequest(
                blob_model,
                GreengrassConfiguration(
                    component_name="M", target_platform={"Os": "LINUX", "Arch": "X86_64"}
                ),
                output=str(tmp_path / "out"),
            ),
            JobStore(tmp_path / "jobs.sqlite3"),
        )
        assert record.status == "SUCCEEDED"
        with zipfile.ZipFile(tmp_path / "out/artifacts/M/1.0.0/model.zip") as handle:
            handle.extractall(target)
    else:  # what the job puts in the ZIP for an x86 CPU target: the package plus target.json
        shutil.copytree(blob_model, target)
        target_json = {
            "backend": "cpu",
            "target": {"arch": "X86_64", "accelerator": None},
            "cpu_requirements": {},
        }
        (target / "target.json").write_text(json.dumps(target_json))
    for path in target.iterdir():
        path.chmod(0o444)  # Greengrass artifacts are read-only
    return target


def test_install_view_links_artifacts_and_adds_a_writable_engine_cache(
    unarchived: Path, tmp_path: Path
) -> None:
    view = install_view(unarchived, tmp_path / "work" / "model")
    assert (view / "manifest.json").is_symlink() and (
        view / "manifest.json"
    ).resolve() == unarchived / "manifest.json"
    assert (view / "engines").is_dir() and os.access(view / "engines", os.W_OK)
    from edge_agent.inference import Predictor

    Predictor.open(view).close()  # the view is a loadable package
    assert install_view(unarchived, view) == view  # install runs on every nucleus start


def test_cpu_feature_check() -> None:
    flags = cpu_flags("processor : 0\nflags\t\t: fpu sse avx avx2 fma\n")
    target = {
        "target": {"arch": "X86_64", "accelerator": None},
        "cpu_requirements": {"flags": ["avx2", "bmi2", "fma"]},
    }
    assert missing_cpu_features(target, flags, "x86_64") == ["bmi2"]
    assert missing_cpu_features(target, flags | {"bmi2"}, "x86_64") == []
    assert "architecture X86_64" in missing_cpu_features(target, flags, "aarch64")[0]
    arm = cpu_flags("Features\t: fp asimd evtstrm\n")
    assert (
        missing_cpu_features(
            {"target": {"arch": "ARM64"}, "cpu_requirements": {"flags": ["asimd"]}}, arm, "aarch64"
        )
        == []
    )


def test_link_and_unlink(tmp_path: Path) -> None:
    model = tmp_path / "work" / "model"
    model.mkdir(parents=True)
    models = models_directory("", str(tmp_path / "agent" / "models"))
    assert models == tmp_path / "agent" / "models"
    assert models_directory("{aws.iot.lookoutvision.EdgeAgent:configuration:/ModelsDirectory}", "/d") == Path(
        "/d"
    )
    assert models_directory("/custom", "/d") == Path("/custom")
    link = link_model("com.example.M", model, models)
    assert link.is_symlink() and link.resolve() == model.resolve()
    assert link_model("com.example.M", model, models) == link  # idempotent
    assert [p.name for p in models.iterdir()] == ["com.example.M"]  # no temporary links left behind
    other = tmp_path / "other"
    other.mkdir()
    assert unlink_model("com.example.M", other, models) is False  # not ours: left alone
    assert unlink_model("com.example.M", model, models) is True
    assert not link.exists() and not link.is_symlink()


def test_main_runs_the_recipe_steps(unarchived: Path, tmp_path: Path) -> None:
    view, models = tmp_path / "work" / "model", tmp_path / "agent" / "models"
    assert main(["install", "--source", str(unarchived), "--target", str(view)]) == 0
    common = [
        "--component",
        "M",
        "--model",
        str(view),
        "--models-dir",
        "",
        "--default-models-dir",
        str(models),
    ]
    assert main(["link", *common, "--autostart", "false"]) == 0
    assert (models / "M").resolve() == view.resolve()
    assert main(["unlink", *common]) == 0
    assert not (models / "M").exists()
    # startup in one step: install view then link
    view.joinpath("manifest.json").unlink()
    assert main(["start", "--source", str(unarchived), *common]) == 0
    assert (view / "manifest.json").is_symlink() and (models / "M").resolve() == view.resolve()
    assert json.loads((view / "target.json").read_text())["backend"] == "cpu"


def test_device_steps_stay_light() -> None:
    """The steps run in the agent's venv at every start: no packaging job, yaml, ONNX, torch or boto3."""
    import subprocess
    import sys

    code = (
        "import sys, edge_agent.component.model, edge_agent.component.agent_install, edge_agent.packager.device;"
        "bad = [m for m in ('torch', 'boto3', 'onnx', 'yaml', 'edge_agent.packager.job') if m in sys.modules];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_published_recipes_old_module_name_still_runs_the_steps(unarchived: Path, tmp_path: Path) -> None:
    """Published model recipes run `python -m edge_agent.packager.device`: it forwards to the new module."""
    import subprocess
    import sys

    view = tmp_path / "work" / "model"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "edge_agent.packager.device",
            "install",
            "--source",
            str(unarchived),
            "--target",
            str(view),
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert (view / "manifest.json").is_symlink() and (view / "engines").is_dir()
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "edge_agent.packager.device",
            "install",
            "--source",
            str(tmp_path),
            "--target",
            str(view),
        ],
        capture_output=True,
        text=True,
    )
    assert bad.returncode != 0 and "holds no manifest.json" in bad.stderr


def test_backend_mismatch_warning() -> None:
    assert warn_backend_mismatch({"backend": "tensorrt"}, "cpu") is not None
    assert warn_backend_mismatch({"backend": "tensorrt"}, "tensorrt") is None
    assert warn_backend_mismatch({"backend": "cpu"}, "cpu") is None


def test_engine_prebuild_never_blocks_the_start(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """TensorRT importable but CUDA unusable (mocked: no GPU here): the step reports and carries on."""
    import sys
    import types

    from edge_agent.component import model as device
    from edge_agent.runtime import tensorrt as trt_backend

    assert device.prebuild_engine(tmp_path, {"backend": "cpu"}) == "not an NVIDIA package"
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    assert "not importable" in device.prebuild_engine(tmp_path, {"engine": {"gpu_code": "sm_72"}})
    monkeypatch.setitem(sys.modules, "tensorrt", types.SimpleNamespace(__version__="10.3.0"))

    def no_cuda() -> str:
        raise RuntimeError("no CUDA device")

    monkeypatch.setattr(trt_backend, "local_gpu_code", no_cuda)
    message = device.prebuild_engine(tmp_path, {"engine": {"gpu_code": "sm_72"}})
    assert "no CUDA device" in message and "first start" in message
