"""Seeded, stratified train/test split for single-dataset projects.

Strata: normal images; anomalous images grouped by their set of labels (segmentation), so each
anomaly type is represented on both sides. Each stratum of two or more images gives
round(n * test_fraction) images to the test set, at least one and at most n - 1.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace

import numpy as np

from edge_agent.dataset.errors import DatasetError
from edge_agent.dataset.types import Dataset, Sample


def _stratum(sample: Sample) -> tuple[bool, tuple[str, ...]]:
    return sample.is_anomalous, tuple(sorted(sample.labels))


def split_dataset(dataset: Dataset, test_fraction: float = 0.2, seed: int = 0) -> tuple[Dataset, Dataset]:
    """(train, test); the same dataset, fraction and seed always give the same split."""
    if not 0.0 < test_fraction < 1.0:
        raise DatasetError(f"test_fraction is {test_fraction}; expected a number strictly between 0 and 1")
    groups: dict[tuple[bool, tuple[str, ...]], list[int]] = defaultdict(list)
    for index, sample in enumerate(dataset.samples):
        groups[_stratum(sample)].append(index)
    rng = np.random.default_rng(seed)
    test: set[int] = set()
    for key in sorted(groups):
        members = groups[key]
        if len(members) < 2:
            continue
        count = min(len(members) - 1, max(1, round(len(members) * test_fraction)))
        chosen = rng.permutation(len(members))[:count]
        test.update(members[i] for i in chosen)
    train_samples = tuple(s for i, s in enumerate(dataset.samples) if i not in test)
    test_samples = tuple(s for i, s in enumerate(dataset.samples) if i in test)
    return (
        replace(dataset, samples=train_samples),
        replace(dataset, samples=test_samples, unlabelled=0),
    )
