from __future__ import annotations

import json
from dataclasses import replace

import pytest

from edge_agent.errors import ModelPackageError
from edge_agent.model_package import MANIFEST_NAME, AnomalyLabel, Manifest, load, save
from edge_agent.testing.onnx_models import bright_blob_package


def test_save_then_load_round_trips_and_records_the_graph_hash(tmp_path):
    package = bright_blob_package(tmp_path / "p", segmentation=True)
    loaded = load(package.directory)
    assert loaded.manifest == package.manifest
    assert len(loaded.manifest.graph_sha256) == 64
    loaded.verify_graph()


def test_a_changed_graph_is_detected_as_corrupt(tmp_path):
    package = bright_blob_package(tmp_path / "p")
    with package.graph_path.open("ab") as handle:
        handle.write(b"\0")
    with pytest.raises(ModelPackageError, match="corrupt"):
        load(package.directory).verify_graph()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: m.update(format_version=2), "format_version is 2"),
        (lambda m: m["input"].update(width=10), "width is 10"),
        (lambda m: m.update(threshold=1.5), "threshold is 1.5"),
        (lambda m: m.update(model_type="detection"), "model_type is 'detection'"),
        (lambda m: m.pop("threshold"), "missing the field 'threshold'"),
        (lambda m: m.update(labels=[{"name": "x", "hex_color": "#12345"}]), "must not list anomaly labels"),
        (
            lambda m: m.update(model_type="segmentation", labels=[{"name": "x", "hex_color": "#abcdef"}]),
            "not upper-case #RRGGBB",
        ),
        (lambda m: m.update(graph="../model.onnx"), "file name inside the package"),
    ],
)
def test_load_names_the_bad_field(tmp_path, change, message):
    package = bright_blob_package(tmp_path / "p")
    path = package.directory / MANIFEST_NAME
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))
    with pytest.raises(ModelPackageError, match=message.replace("(", r"\(").replace(".", r"\.")):
        load(package.directory)


def test_missing_and_invalid_json_manifests_say_so(tmp_path):
    with pytest.raises(ModelPackageError, match="not found"):
        load(tmp_path)
    (tmp_path / MANIFEST_NAME).write_text("{")
    with pytest.raises(ModelPackageError, match="not valid JSON"):
        load(tmp_path)


def test_segmentation_needs_labels_and_background_is_reserved(tmp_path):
    base = Manifest(model_type="classification", width=64, height=64, threshold=0.5, model_arn="a")
    with pytest.raises(ModelPackageError, match="at least one anomaly label"):
        replace(base, model_type="segmentation")
    with pytest.raises(ModelPackageError, match="reserved"):
        replace(base, model_type="segmentation", labels=(AnomalyLabel("Background", "#FFFFFF"),))
    saved = save(tmp_path, base)
    assert saved.manifest.graph_sha256 == ""  # no graph file yet: nothing to hash
