"""Session fixtures: small synthetic datasets and models trained on them once per test run.

`segmentation_model` and `classification_model` are real trainings (EfficientNet-Lite0 features,
memory bank, patch head, ONNX export) on 160x128 synthetic parts, a few seconds each.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from edge_agent.testing.synthetic import write_synthetic_dataset
from edge_agent.training import TrainConfig, TrainResult, train
from edge_agent.training.feature_choice import Candidate
from edge_agent.training.features import FeatureConfig

SIZE = (160, 128)
LABELS = (("scratch", "#2CA02C"), ("stain", "#1F77B4"))
FAST_FEATURES = Candidate(FeatureConfig(long_side=192))


@dataclass(frozen=True)
class SyntheticData:
    root: Path
    seg_train: Path
    seg_test: Path
    cls_train: Path
    cls_test: Path


@pytest.fixture(scope="session")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> SyntheticData:
    root = tmp_path_factory.mktemp("synthetic")
    return SyntheticData(
        root=root,
        seg_train=write_synthetic_dataset(root / "seg", 20, 16, SIZE, LABELS, seed=1, prefix="train-"),
        seg_test=write_synthetic_dataset(root / "seg", 12, 12, SIZE, LABELS, seed=2, prefix="test-"),
        cls_train=write_synthetic_dataset(root / "cls", 20, 8, SIZE, (), seed=3, prefix="train-"),
        cls_test=write_synthetic_dataset(root / "cls", 12, 12, SIZE, (), seed=4, prefix="test-"),
    )


def small_config(train_manifest: Path, output: Path, **overrides: object) -> TrainConfig:
    """Synthetic sets are below the guide's minimum counts on purpose (speed): skip that check."""
    values: dict[str, object] = {
        "dataset": train_manifest,
        "output": output,
        "check_minimums": False,
        "progress": False,
        "features": FAST_FEATURES,
        **overrides,
    }
    return TrainConfig(**values)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def segmentation_model(synthetic: SyntheticData, tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    out = tmp_path_factory.mktemp("models") / "seg"
    return train(
        small_config(synthetic.seg_train, out, test_dataset=synthetic.seg_test, project="synthetic-seg")
    )


@pytest.fixture(scope="session")
def classification_model(synthetic: SyntheticData, tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    out = tmp_path_factory.mktemp("models") / "cls"
    return train(small_config(synthetic.cls_train, out, test_dataset=synthetic.cls_test))
