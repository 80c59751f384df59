"""PatchCore's memory bank: greedy coreset subsampling and nearest-neighbour distances."""

from __future__ import annotations

import torch

PROJECTION_DIM = 128  # random projection used only to choose the coreset (as in PatchCore)
PIVOTS = 1024  # reference rows for skipping distance updates (select_coreset)


def select_coreset(patches: torch.Tensor, size: int, seed: int) -> torch.Tensor:
    """Indices of a greedy k-centre subset of `size` rows: keeps rare normal patterns that random
    sampling would drop. Distances use a random projection and the matmul form, for speed.

    Each step adds the row farthest from the subset and lowers every row's distance to the new
    centre. Most rows are far from it, so the triangle inequality skips them exactly: with each
    row's distance r to one of `PIVOTS` random pivot rows, |x - c| >= |c - pivot| - r, and a row
    whose bound already reaches its current distance cannot get closer. On a training pool of
    100k patches this touches about 5% of the rows per step and selects the same subset (up to
    float rounding) about 4 times faster than updating every row (bench/README.md#training-time).
    """
    count = len(patches)
    if size >= count:
        return torch.arange(count)
    generator = torch.Generator().manual_seed(seed)
    dim = patches.shape[1]
    projected = patches
    if dim > PROJECTION_DIM:
        projection = torch.randn(dim, PROJECTION_DIM, generator=generator) / PROJECTION_DIM**0.5
        projected = patches @ projection
    sq_norm = (projected * projected).sum(1)
    chosen = torch.empty(size, dtype=torch.long)
    first = int(torch.randint(count, (1,), generator=generator))
    chosen[0] = first
    pivots = projected[torch.randperm(count, generator=generator)[: min(PIVOTS, count)]]
    pivot_sq = (pivots * pivots).sum(1)
    pivot_of, to_pivot = _nearest_pivot(projected, sq_norm, pivots, pivot_sq)
    nearest = torch.addmv(sq_norm, projected, projected[first], alpha=-2.0).add_(sq_norm[first])
    for i in range(1, size):
        index = int(nearest.argmax())
        chosen[i] = index
        centre = projected[index]
        centre_to_pivot = torch.addmv(pivot_sq, pivots, centre, alpha=-2.0).add_(sq_norm[index])
        lower = centre_to_pivot.clamp_min_(0.0).sqrt_()[pivot_of].sub_(to_pivot)
        # A small margin keeps rows whose bound is within float rounding of their distance.
        reach = nearest.clamp_min(0.0).sqrt_().mul_(1.001).add_(1e-4)
        rows = (lower < reach).nonzero()[:, 0]
        candidate = torch.addmv(sq_norm[rows], projected[rows], centre, alpha=-2.0).add_(sq_norm[index])
        nearest[rows] = torch.minimum(nearest[rows], candidate)
    return chosen


def _nearest_pivot(
    points: torch.Tensor, sq_norm: torch.Tensor, pivots: torch.Tensor, pivot_sq: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row: its nearest pivot's index and the distance to it (in chunks, to bound memory)."""
    index, distance = [], []
    for rows, norms in zip(points.split(8192), sq_norm.split(8192), strict=True):
        sq = (norms.unsqueeze(1) - 2.0 * rows @ pivots.T + pivot_sq.unsqueeze(0)).clamp_min_(0.0)
        best, which = sq.min(dim=1)
        index.append(which)
        distance.append(best.sqrt_())
    return torch.cat(index), torch.cat(distance)


def augmented_bank(bank: torch.Tensor) -> torch.Tensor:
    """[B, D + 1]: each bank row times -2, then its squared norm (what nearest_distance multiplies by)."""
    return torch.cat([-2.0 * bank, (bank * bank).sum(1, keepdim=True)], 1)


def nearest_distance(queries: torch.Tensor, bank_aug: torch.Tensor) -> torch.Tensor:
    """Euclidean distance of each query row to its nearest bank row (`bank_aug` from augmented_bank).

    |q - b|^2 = |q|^2 + (|b|^2 - 2 q.b), and the bracket is one MatMul of [q, 1] with the augmented
    bank: no elementwise pass over the [queries, bank] matrix. |q|^2 is added after the minimum (the
    same value: rounding is monotonic). In the cookies graph this saves 8% of a call against the
    matmul, Sub and Add form (bench/README.md#a-faster-model)."""
    ones = torch.ones(int(queries.shape[0]), 1, dtype=queries.dtype)  # a constant in the exported graph
    sq = torch.cat([queries, ones], 1) @ bank_aug.T
    best = sq.min(dim=1).values + (queries * queries).sum(1)
    return best.clamp_min(0.0).sqrt()


def distances(queries: torch.Tensor, bank: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """nearest_distance over many queries, in chunks to bound memory during training."""
    bank_aug = augmented_bank(bank)
    return torch.cat([nearest_distance(q, bank_aug) for q in queries.split(chunk)])
