"""Patch features: from the client's uint8 bitmap to a grid of locally aggregated backbone features.

Everything here runs inside the exported graph: cast, downscale to the working size, ImageNet-style
normalisation, EfficientNet-Lite0 up to the deepest stage used, multi-scale fusion at the finest
stage's resolution and 3x3 neighbourhood averaging (PatchCore's local aggregation).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from edge_agent.training.backbone import INPUT_MEAN, INPUT_STD, EfficientNetLite0


@dataclass(frozen=True)
class FeatureConfig:
    """Working size and which backbone blocks feed the patch features."""

    long_side: int = 320  # the image is scaled so its longer side has this many pixels
    block_ids: tuple[int, ...] = (4, 10)  # stride-8 (40 ch) and stride-16 (112 ch) outputs
    aggregate: int = 3  # neighbourhood averaging window, in feature cells

    def working_size(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) of the working image, multiples of 16 so every stage divides evenly."""
        scale = self.long_side / max(width, height)
        return max(32, round(width * scale / 16) * 16), max(32, round(height * scale / 16) * 16)


def downscale(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Float NCHW to (h, w): integer box filter first (anti-aliasing), then bilinear to the exact size."""
    h, w = size
    factor = max(1, min(int(image.shape[-2]) // h, int(image.shape[-1]) // w))
    if factor > 1:
        image = F.avg_pool2d(image, factor, factor)
    if (int(image.shape[-2]), int(image.shape[-1])) != (h, w):
        image = F.interpolate(image, size=(h, w), mode="bilinear", align_corners=False)
    return image


class PatchFeatures(nn.Module):
    """uint8 [H, W, 3] -> float [1, D, h, w] patch features on the finest used stage's grid."""

    def __init__(self, backbone: EfficientNetLite0, config: FeatureConfig, width: int, height: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.config = config
        work_w, work_h = config.working_size(width, height)
        self.work_size = (work_h, work_w)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = image.permute(2, 0, 1).unsqueeze(0).to(torch.float32)
        x = downscale(x, self.work_size)
        x = (x - INPUT_MEAN) / INPUT_STD
        maps = self.backbone.forward_features(x, self.config.block_ids)
        grid = (int(maps[0].shape[-2]), int(maps[0].shape[-1]))
        k = self.config.aggregate
        fused = []
        for fmap in maps:
            if k > 1:
                fmap = F.avg_pool2d(fmap, k, stride=1, padding=k // 2, count_include_pad=False)
            if (int(fmap.shape[-2]), int(fmap.shape[-1])) != grid:
                fmap = F.interpolate(fmap, size=grid, mode="bilinear", align_corners=False)
            fused.append(fmap)
        return torch.cat(fused, dim=1)
