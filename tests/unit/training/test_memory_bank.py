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
