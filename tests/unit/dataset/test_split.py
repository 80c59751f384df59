"""Seeded, stratified splits."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from edge_agent.dataset import Dataset, DatasetError, Sample, split_dataset
from edge_agent.model_package import AnomalyLabel


def _dataset() -> Dataset:
    samples = [Sample(Path(f"n{i}.png"), False) for i in range(30)]
    samples += [Sample(Path(f"c{i}.png"), True, Path(f"mc{i}.png"), ("crack",)) for i in range(20)]
    samples += [Sample(Path(f"d{i}.png"), True, Path(f"md{i}.png"), ("dent",)) for i in range(10)]
    samples += [Sample(Path(f"x{i}.png"), True, Path(f"mx{i}.png"), ("crack", "dent")) for i in range(5)]
    labels = (AnomalyLabel("crack", "#23A436"), AnomalyLabel("dent", "#1F77B4"))
    return Dataset(samples=tuple(samples), width=96, height=64, labels=labels)


def _strata(dataset: Dataset) -> Counter:
    return Counter((s.is_anomalous, s.labels) for s in dataset.samples)


def test_split_is_reproducible_and_seed_dependent() -> None:
    dataset = _dataset()
    first = split_dataset(dataset, 0.2, seed=7)
    assert first == split_dataset(dataset, 0.2, seed=7)
    assert first[1].samples != split_dataset(dataset, 0.2, seed=8)[1].samples


def test_split_is_stratified_per_label_and_partitions_the_dataset() -> None:
    dataset = _dataset()
    train, test = split_dataset(dataset, 0.2, seed=1)
    assert _strata(test) == {
        (False, ()): 6,
        (True, ("crack",)): 4,
        (True, ("dent",)): 2,
        (True, ("crack", "dent")): 1,
    }
    assert _strata(train) + _strata(test) == _strata(dataset)
    assert set(train.samples).isdisjoint(test.samples)
    assert train.labels == test.labels == dataset.labels
    # Order is kept within each side, so manifests written from a split read naturally.
    order = {s: i for i, s in enumerate(dataset.samples)}
    assert [order[s] for s in test.samples] == sorted(order[s] for s in test.samples)


def test_tiny_strata_keep_one_image_on_each_side() -> None:
    samples = (Sample(Path("n0.png"), False), Sample(Path("n1.png"), False), Sample(Path("a0.png"), True))
    train, test = split_dataset(Dataset(samples=samples, width=64, height=64), 0.1)
    assert (len(train.normal), len(test.normal)) == (1, 1)
    assert (len(train.anomalous), len(test.anomalous)) == (1, 0)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1])
def test_fraction_must_be_inside_zero_one(fraction: float) -> None:
    with pytest.raises(DatasetError, match="test_fraction"):
        split_dataset(_dataset(), fraction)
