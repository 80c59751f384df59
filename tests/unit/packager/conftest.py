"""Small real model packages shared by the packager tests (built once per session)."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_agent.testing.onnx_models import bright_blob_package, heavy_package


@pytest.fixture(scope="session")
def blob_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("models") / "blob"
    bright_blob_package(path)
    return path


@pytest.fixture(scope="session")
def blob_segmentation(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("models") / "blob-seg"
    bright_blob_package(path, segmentation=True)
    return path


@pytest.fixture(scope="session")
def conv_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small conv stack: something for int8 quantisation to act on."""
    path = tmp_path_factory.mktemp("models") / "conv"
    heavy_package(path, 96, 64, side=48, layers=3, channels=8)
    return path


@pytest.fixture(scope="session")
def conv_samples(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real-looking images of the conv model's size (synthetic parts, normal and defective)."""
    from edge_agent.testing.synthetic import write_synthetic_dataset

    root = tmp_path_factory.mktemp("samples")
    write_synthetic_dataset(root, n_normal=6, n_anomalous=6, size=(96, 64), labels=(), seed=3)
    return root / "images"
