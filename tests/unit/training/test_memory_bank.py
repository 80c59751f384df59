"""Coreset subsampling and nearest-neighbour distances of the memory bank."""

from __future__ import annotations

import numpy as np
import torch

from edge_agent.training.fit import patch_targets
from edge_agent.training.memory_bank import distances, select_coreset


def test_distances_match_brute_force() -> None:
    generator = torch.Generator().manual_seed(0)
    queries, bank = torch.randn(300, 40, generator=generator), torch.randn(90, 40, generator=generator)
    expected = torch.cdist(queries, bank).min(dim=1).values
    assert torch.allclose(distances(queries, bank, chunk=64), expected, atol=1e-4)


def test_distances_to_identical_rows_are_zero_not_nan() -> None:
    """|q|^2 is added after the minimum: a query that is a bank row still gets 0 (clamped), not NaN."""
    bank = torch.randn(50, 152, generator=torch.Generator().manual_seed(1))
    got = distances(bank[:10].clone(), bank)
    assert torch.isfinite(got).all() and float(got.max()) < 0.05


def test_coreset_keeps_rare_patterns() -> None:
    """k-centre keeps the lone outlier that a 5% random sample would very likely drop."""
    generator = torch.Generator().manual_seed(1)
    common = torch.randn(2000, 16, generator=generator) * 0.1
    outlier = torch.full((1, 16), 5.0)
    patches = torch.cat([common, outlier])
    chosen = select_coreset(patches, 100, seed=0)
    assert len(set(chosen.tolist())) == 100
    assert 2000 in chosen.tolist()
    # the worst-covered patch is closer to a k-centre bank than to a random bank of the same size
    random_pick = torch.randperm(len(patches), generator=generator)[:100]
    assert distances(patches, patches[chosen]).max() < distances(patches, patches[random_pick]).max()


def test_thin_defects_still_yield_defect_patches() -> None:
    index = np.zeros((64, 64), np.uint8)
    index[10:12, :] = 1  # a 2-pixel line: a quarter of each 8x8 patch it crosses
    index[40:56, 40:56] = 2  # a blob filling whole patches
    targets = patch_targets(index, (8, 8), 2, positive=0.5).reshape(8, 8)
    assert (targets[1] == 1).all()
    assert (targets[5:7, 5:7] == 2).all()
    assert (targets[[0, 2, 3, 4]] == 0).all()


def _greedy_reference(patches: torch.Tensor, size: int, seed: int) -> list[int]:
    """k-centre greedy that updates every row at every step (what select_coreset must equal)."""
    generator = torch.Generator().manual_seed(seed)
    first = int(torch.randint(len(patches), (1,), generator=generator))
    chosen = [first]
    nearest = ((patches - patches[first]) ** 2).sum(1)
    for _ in range(1, size):
        chosen.append(int(nearest.argmax()))
        nearest = torch.minimum(nearest, ((patches - patches[chosen[-1]]) ** 2).sum(1))
    return chosen


def test_coreset_skipping_rows_selects_what_updating_every_row_selects() -> None:
    """The triangle-inequality skip is exact: clustered data (as patch features are), 40 dims."""
    generator = torch.Generator().manual_seed(3)
    centres = torch.randn(30, 40, generator=generator) * 4
    patches = centres[torch.randint(30, (3000,), generator=generator)] + torch.randn(
        3000, 40, generator=generator
    )
    chosen = select_coreset(patches, 300, seed=5)
    assert chosen.tolist() == _greedy_reference(patches, 300, seed=5)
