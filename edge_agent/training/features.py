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


def box_factor(height: int, width: int, size: tuple[int, int]) -> int:
    """Integer box-filter factor from the bitmap's size to the working size (h, w), at least 1."""
    return max(1, min(height // size[0], width // size[1]))


def box_kernel(factor: int) -> torch.Tensor:
    """Conv weights [3, 1, f, 3f] that average each f x f block of one channel of an interleaved RGB
    row (its samples sit 3 apart) and normalise it: one strided Conv turns [1, 1, H, W*3] into the
    network's [1, 3, H/f, W/f] input, with no Transpose of the full-size bitmap and no AveragePool."""
    kernel = torch.zeros(3, 1, factor, 3 * factor)
    for channel in range(3):
        kernel[channel, 0, :, channel::3] = 1.0 / (factor * factor * INPUT_STD)
    return kernel


BOX_BIAS = -INPUT_MEAN / INPUT_STD  # the normalisation's offset, the box filter's bias


def network_input(image: torch.Tensor, size: tuple[int, int], kernel: torch.Tensor) -> torch.Tensor:
    """Float [H, W, 3] RGB -> normalised [1, 3, h, w]: an integer box filter first (anti-aliasing,
    `kernel` from box_kernel), then bilinear to the exact size. Normalising first is the same map:
    bilinear weights sum to 1.

    The box filter reads the bitmap as it comes (HWC): 4% of the cookies graph saved against a
    Transpose, an AveragePool and the normalisation (bench/README.md#a-faster-model)."""
    height, width = int(image.shape[0]), int(image.shape[1])
    factor = int(kernel.shape[2])
    bias = torch.full((3,), BOX_BIAS, dtype=kernel.dtype)
    rows = image.reshape(1, 1, height, width * 3)
    x = F.conv2d(rows, kernel, bias, stride=(factor, 3 * factor))
    if (int(x.shape[-2]), int(x.shape[-1])) != size:
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    return x


class PatchFeatures(nn.Module):
    """uint8 [H, W, 3] -> float [1, D, h, w] patch features on the finest used stage's grid."""

    def __init__(self, backbone: EfficientNetLite0, config: FeatureConfig, width: int, height: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.config = config
        work_w, work_h = config.working_size(width, height)
        self.work_size = (work_h, work_w)
        self.register_buffer("box", box_kernel(box_factor(height, width, self.work_size)))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = self.network_input(image)
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

    def network_input(self, image: torch.Tensor) -> torch.Tensor:
        """[H, W, 3] bitmap -> the backbone's normalised [1, 3, h, w] input (module function network_input)."""
        if image.dtype != torch.float32:  # the graph casts once itself; a second Cast would copy the bitmap
            image = image.to(torch.float32)
        return network_input(image, self.work_size, self.box)
