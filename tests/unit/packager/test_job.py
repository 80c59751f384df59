"""Packaging jobs end to end on real ONNX Runtime: outputs, records, failures, quantisation."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml

from edge_agent.inference import Predictor
from edge_agent.model_package import load
from edge_agent.packager import GreengrassConfiguration, JobStore, PackagingRequest, start_job
from edge_agent.packager.compile_cpu import Tolerance
from edge_agent.packager.job import ConflictError
from edge_agent.packager.output import LocalOutput, OutputError
from edge_agent.packager.samples import synthetic_inputs

X86 = {"Os": "LINUX", "Arch": "X86_64"}


def package(model: Path, tmp_path: Path, store: JobStore | None = None, **fields: object):
    quantize = bool(fields.pop("quantize", False))
    tolerance = fields.pop("tolerance", Tolerance())
    samples = fields.pop("samples", None)
    fields.setdefault("component_name", "com.example.Model")
    request = PackagingRequest(
        model,
        GreengrassConfiguration(**fields),
        output=str(tmp_path / "out"),
        quantize=quantize,
        tolerance=tolerance,
        sample_images=samples,
    )
    return start_job(request, store or JobStore(tmp_path / "jobs.sqlite3"))


def unzip(path: Path, destination: Path) -> Path:
    with zipfile.ZipFile(path) as handle:
        handle.extractall(destination)
    return destination


def test_cpu_package_layout_recipe_and_record(blob_segmentation: Path, tmp_path: Path) -> None:
    record = package(blob_segmentation, tmp_path, target_platform=X86, tags=[{"Key": "k", "Value": "v"}])
    assert record.status == "SUCCEEDED", record.status_message
    assert record.started_at and record.ended_at and record.started_at <= record.ended_at
    details = record.output["Greengrass"]
    assert details["ComponentVersion"] == "1.0.0"  # manifest model_version 1
    assert details["ComponentVersionArn"].endswith(":components:com.example.Model:versions:1.0.0")
    out = tmp_path / "out"
    archive = out / "artifacts/com.example.Model/1.0.0/model.zip"
    assert details["Artifacts"] == [str(archive)] and details["ArtifactBytes"] == archive.stat().st_size
    recipe = json.loads((out / "recipes/com.example.Model-1.0.0.json").read_text())
    assert yaml.safe_load((out / "recipes/com.example.Model-1.0.0.yaml").read_text()) == recipe
    assert recipe["ComponentDependencies"] == {
        "aws.iot.lookoutvision.EdgeAgent": {"VersionRequirement": ">=1.3.0 <2.0.0", "DependencyType": "HARD"}
    }
    (manifest,) = recipe["Manifests"]
    assert manifest["Platform"] == {"os": "linux", "architecture": "amd64"}
    # Never file:// (the nucleus refuses it): folder output without an S3 location names the unpublished
    # bucket; local deployments find the artifact by file name under artifacts/<name>/<version>/.
    uri = "s3://YOUR-BUCKET/artifacts/com.example.Model/1.0.0/model.zip"
    assert manifest["Artifacts"] == [
        {"URI": uri, "Unarchive": "ZIP", "Permission": {"Read": "ALL", "Execute": "NONE"}}
    ]
    assert recipe["ComponentConfiguration"]["DefaultConfiguration"]["Socket"] == (
        "unix:///tmp/aws.iot.lookoutvision.EdgeAgent.sock"
    )
    assert "@@" not in json.dumps(recipe)
    model = unzip(archive, tmp_path / "unzipped")
    assert sorted(p.name for p in model.iterdir()) == ["manifest.json", "model.onnx", "target.json"]
    target = json.loads((model / "target.json").read_text())
    assert target["backend"] == "cpu" and target["optimization"]["level"] == "extended"
    assert target["cpu_requirements"]["flags"] == ["avx2", "bmi2", "fma"]
    packaged = load(model)
    packaged.verify_graph()
    assert packaged.manifest.labels == load(blob_segmentation).manifest.labels
    assert packaged.manifest.provenance["packaging_job"] == record.job_name
    # The compiled package predicts what the source predicts.
    source, compiled = Predictor.open(blob_segmentation), Predictor.open(model)
    for image in synthetic_inputs(packaged.manifest, count=4, seed=7):
        a, b = source.predict(image), compiled.predict(image)
        assert a.is_anomalous == b.is_anomalous and abs(a.anomaly_score - b.anomaly_score) < 1e-5
        assert np.array_equal(a.mask, b.mask)


def test_arm_and_jetson_recipes_keep_components_off_other_devices(blob_model: Path, tmp_path: Path) -> None:
    arm = package(
        blob_model, tmp_path, target_platform={"Os": "LINUX", "Arch": "ARM64"}, component_version="1.0.0"
    )
    jetson = package(blob_model, tmp_path, target_device="jetson_xavier", component_version="2.0.0")
    assert arm.status == jetson.status == "SUCCEEDED"
    for version in ("1.0.0", "2.0.0"):
        recipe = json.loads((tmp_path / f"out/recipes/com.example.Model-{version}.json").read_text())
        assert recipe["Manifests"][0]["Platform"] == {"os": "linux", "architecture": "aarch64"}
        assert len(recipe["Manifests"]) == 1  # no catch-all manifest: other platforms cannot install it


def test_nvidia_package_ships_onnx_and_build_settings_here(blob_model: Path, tmp_path: Path) -> None:
    """No TensorRT or GPU on this host, so the decision is to build on the device."""
    options = json.dumps({"gpu-code": "sm_86", "trt-ver": "10.3.0", "cuda-ver": "12.4"})
    record = package(
        blob_model, tmp_path, target_platform={**X86, "Accelerator": "NVIDIA"}, compiler_options=options
    )
    assert record.status == "SUCCEEDED", record.status_message
    model = unzip(tmp_path / "out/artifacts/com.example.Model/1.0.0/model.zip", tmp_path / "m")
    target = json.loads((model / "target.json").read_text())
    assert target["backend"] == "tensorrt"
    assert target["engine"]["build_on_device"] is True and target["engine"]["prebuilt"] is None
    assert target["engine"]["gpu_code"] == "sm_86" and "TensorRT" in target["engine"]["decision"]
    assert target["optimization"]["level"] == "basic"
    assert not (model / "engines").exists()
    # The graph passes TensorRT's rules, TensorRT 10.3 is a release the device backend takes, and
    # the device's FP16 check finds the package's samples.
    assert target["engine"]["tensorrt_problems"] == [] and target["engine"]["backend_support"] is None
    assert (model / "samples.npz").is_file()


def test_existing_name_and_version_is_refused_without_a_record(blob_model: Path, tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.sqlite3")
    assert package(blob_model, tmp_path, store, target_platform=X86).status == "SUCCEEDED"
    with pytest.raises(ConflictError, match=r"com.example.Model 1.0.0 already exists"):
        package(blob_model, tmp_path, store, target_platform=X86)
    assert len(store.list()) == 1
    assert (
        package(blob_model, tmp_path, store, target_platform=X86, component_version="1.0.1").status
        == "SUCCEEDED"
    )


def test_compile_failure_ends_the_job_failed_with_the_reason(tmp_path: Path, blob_model: Path) -> None:
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(blob_model, broken)
    manifest = json.loads((broken / "manifest.json").read_text())
    manifest["graph_sha256"] = ""
    (broken / "manifest.json").write_text(json.dumps(manifest))
    (broken / "model.onnx").write_bytes(b"not an onnx graph")
    store = JobStore(tmp_path / "jobs.sqlite3")
    record = package(broken, tmp_path, store, target_platform=X86)
    assert record.status == "FAILED"
    assert record.status_message and record.ended_at
    assert store.get(record.job_name).status == "FAILED"
    assert not (tmp_path / "out/recipes").exists()


def test_quantisation_is_kept_only_when_the_accuracy_check_passes(
    conv_model: Path, conv_samples: Path, tmp_path: Path
) -> None:
    loose = package(
        conv_model,
        tmp_path,
        target_platform=X86,
        quantize=True,
        samples=conv_samples,
        component_version="1.0.0",
    )
    strict = package(
        conv_model,
        tmp_path,
        target_platform=X86,
        quantize=True,
        samples=conv_samples,
        component_version="1.0.1",
        tolerance=Tolerance(max_score_diff=0.0),
    )
    assert loose.status == strict.status == "SUCCEEDED"
    targets = {}
    for version in ("1.0.0", "1.0.1"):
        with zipfile.ZipFile(tmp_path / f"out/artifacts/com.example.Model/{version}/model.zip") as handle:
            targets[version] = json.loads(handle.read("target.json"))
            ops = [line for line in handle.read("model.onnx").split(b"QuantizeLinear")]
            targets[version]["has_qdq"] = len(ops) > 1
    loose_q, strict_q = (targets[v]["optimization"]["quantization"] for v in ("1.0.0", "1.0.1"))
    drift = loose_q["accuracy_check"]["max_score_diff"]
    assert loose_q["applied"] is True and targets["1.0.0"]["has_qdq"]
    assert drift <= 0.02 and loose_q["accuracy_check"]["decisions_equal"]
    assert loose_q["accuracy_check"]["samples"] == 12 + 6  # the sample images plus the synthetic inputs
    assert drift > 0  # int8 moves the score a little, so a zero tolerance must reject it
    assert strict_q["applied"] is False and not targets["1.0.1"]["has_qdq"]
    assert "kept float" in strict_q["reason"]


def test_quantisation_needs_sample_images(blob_model: Path, tmp_path: Path) -> None:
    from edge_agent.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="--quantize needs --sample-images"):
        package(blob_model, tmp_path, target_platform=X86, quantize=True)
    with pytest.raises(InvalidInputError, match="is not a folder"):
        package(blob_model, tmp_path, target_platform=X86, quantize=True, samples=tmp_path / "nope")


def test_quantisation_skips_graphs_without_conv_or_matmul(blob_model: Path, tmp_path: Path) -> None:
    record = package(blob_model, tmp_path, target_platform=X86, quantize=True, samples=tmp_path)
    with zipfile.ZipFile(tmp_path / "out/artifacts/com.example.Model/1.0.0/model.zip") as handle:
        quantization = json.loads(handle.read("target.json"))["optimization"]["quantization"]
    assert record.status == "SUCCEEDED"
    assert quantization["applied"] is False and "no Conv/MatMul/Gemm" in quantization["reason"]


def test_not_a_model_package_is_a_validation_error(tmp_path: Path) -> None:
    from edge_agent.errors import ModelPackageError

    with pytest.raises(ModelPackageError, match=r"manifest\.json not found"):
        package(tmp_path, tmp_path, target_platform=X86)


class FailingRecipeOutput(LocalOutput):
    """A real output folder whose YAML recipe upload fails (a full disk, a lost S3 connection)."""

    def put_text(self, relative: str, text: str) -> str:
        if relative.endswith(".yaml"):
            raise OutputError(f"cannot write {relative}: No space left on device")
        return super().put_text(relative, text)


def test_a_failed_upload_leaves_no_half_component_and_the_retry_succeeds(
    blob_model: Path, tmp_path: Path
) -> None:
    store = JobStore(tmp_path / "jobs.sqlite3")
    out = tmp_path / "out"
    request = PackagingRequest(
        blob_model,
        GreengrassConfiguration(component_name="com.example.M", target_platform=X86),
        output=str(out),
    )
    record = start_job(request, store, output=FailingRecipeOutput(out))
    assert record.status == "FAILED" and "No space left" in (record.status_message or "")
    assert [p for p in out.rglob("*") if p.is_file()] == []  # the zip and the JSON recipe are gone
    again = start_job(request, store)
    assert again.status == "SUCCEEDED"
    assert sorted(p.name for p in (out / "recipes").iterdir()) == [
        "com.example.M-1.0.0.json",
        "com.example.M-1.0.0.yaml",
    ]
