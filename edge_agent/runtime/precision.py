"""Does a reduced-precision engine decide what the float graph decides? Measured on sample images.

FP16 halves a TensorRT engine's latency on most GPUs, but a score near the threshold may land on
the other side of it. The device builds FP16, runs both on the package's samples and keeps FP16
only when every decision matches and scores and masks stay within the tolerance below.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from edge_agent.model_package import OUTPUT_MASK, OUTPUT_SCORE


@dataclass(frozen=True)
class Tolerance:
    max_score_diff: float = 0.01  # on the 0..1 score
    min_mask_agreement: float = 0.995  # fraction of pixels painted the same colour


@dataclass(frozen=True)
class Agreement:
    samples: int
    decisions_equal: bool
    max_score_diff: float
    min_mask_agreement: float | None
    flipped: list[int]  # sample indices whose decision changed

    def passes(self, tolerance: Tolerance) -> bool:
        mask_ok = self.min_mask_agreement is None or self.min_mask_agreement >= tolerance.min_mask_agreement
        return self.decisions_equal and self.max_score_diff <= tolerance.max_score_diff and mask_ok

    def describe(self) -> str:
        mask = "" if self.min_mask_agreement is None else f", mask agreement {self.min_mask_agreement:.4f}"
        flips = f", decisions changed on samples {self.flipped}" if self.flipped else ", same decisions"
        return f"{self.samples} samples: max score difference {self.max_score_diff:.2e}{mask}{flips}"


def compare(
    reference: Callable[[np.ndarray], dict[str, np.ndarray]],
    candidate: Callable[[np.ndarray], dict[str, np.ndarray]],
    images: Sequence[np.ndarray],
    threshold: float,
) -> Agreement:
    """Run both on every image; decisions are score >= threshold on float32 values, as the agent decides."""
    limit = float(np.float32(threshold))
    worst_score, worst_mask, flipped = 0.0, None, []
    for index, image in enumerate(images):
        want, got = reference(image), candidate(image)
        a = float(np.asarray(want[OUTPUT_SCORE], np.float32).reshape(-1)[0])
        b = float(np.asarray(got[OUTPUT_SCORE], np.float32).reshape(-1)[0])
        if not np.isfinite(b):
            b = float("inf")
        worst_score = max(worst_score, abs(a - b))
        if (a >= limit) != (b >= limit):
            flipped.append(index)
        if OUTPUT_MASK in want and OUTPUT_MASK in got:
            same = float((np.asarray(want[OUTPUT_MASK]) == np.asarray(got[OUTPUT_MASK])).all(axis=-1).mean())
            worst_mask = same if worst_mask is None else min(worst_mask, same)
    return Agreement(len(images), not flipped, worst_score, worst_mask, flipped)
