"""The exported model: one module from the client's uint8 bitmap to score, mask and label areas.

It is both what training scores its held-out folds with (through `score_map`) and what is exported
to ONNX, so the calibrated threshold applies to exactly the computation the agent runs.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from edge_agent.training.features import PatchFeatures
from edge_agent.training.head import PatchHead, anomaly_logit
from edge_agent.training.image_head import ImageHead
from edge_agent.training.memory_bank import nearest_distance

MAP_UPSAMPLE = 4  # the anomaly map is smoothed at 4x the feature grid
SMOOTH_SIGMA = 2.0  # Gaussian sigma, in pixels of the upsampled map


def _gaussian_kernel(sigma: float) -> torch.Tensor:
    radius = max(1, math.ceil(2 * sigma))
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-(offsets**2) / (2 * sigma**2))
    return kernel / kernel.sum()


class MapSmoother(nn.Module):
    """[N, 1, h, w] grid map -> upsampled, Gaussian-smoothed map (separable conv, reflect padding)."""

    def __init__(self, upsample: int = MAP_UPSAMPLE, sigma: float = SMOOTH_SIGMA) -> None:
        super().__init__()
        self.upsample = upsample
        kernel = _gaussian_kernel(sigma)
        self.radius = len(kernel) // 2
        self.register_buffer("kernel_x", kernel.view(1, 1, 1, -1))
        self.register_buffer("kernel_y", kernel.view(1, 1, -1, 1))

    def forward(self, grid_map: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(grid_map, scale_factor=float(self.upsample), mode="bilinear", align_corners=False)
        r = self.radius
        x = F.conv2d(F.pad(x, [r, r, 0, 0], mode="reflect"), self.kernel_x)
        return F.conv2d(F.pad(x, [0, 0, r, r], mode="reflect"), self.kernel_y)


class AnomalyGraph(nn.Module):
    """Features -> memory-bank distance (-> supervised head) -> smoothed map -> score (and mask).

    Raw image score = max of the smoothed map; anomaly_score = sigmoid((raw - center) / scale), so
    the training-calibrated raw threshold lands at `threshold` (0.5) on the 0..1 scale.
    """

    def __init__(
        self,
        features: PatchFeatures,
        bank: torch.Tensor,
        distance_scale: float,
        head: PatchHead | None,
        center: float,
        scale: float,
        height: int,
        width: int,
        palette: torch.Tensor | None = None,
        pixel_threshold: float = 0.0,
        image_head: ImageHead | None = None,
    ) -> None:
        super().__init__()
        self.features = features
        self.register_buffer("bank", bank.contiguous())
        self.register_buffer("bank_sq_norm", (bank * bank).sum(1))
        self.distance_scale = float(distance_scale)
        self.head = head
        self.smoother = MapSmoother()
        self.center = float(center)
        self.scale = float(scale)
        self.height, self.width = height, width
        self.segmentation = palette is not None
        if palette is not None:
            self.register_buffer("palette", palette.to(torch.uint8))  # [1 + L, 3], row 0 background
            self.register_buffer("label_ids", torch.arange(palette.shape[0]).view(-1, 1, 1))
        self.pixel_threshold = float(pixel_threshold)
        self.image_head = image_head

    def patch_logits(
        self, image: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None, tuple[int, int], torch.Tensor]:
        """Anomaly logit per patch [h*w], with a head all label logits [h*w, 1 + L], the grid and
        the patch features [h*w, D]."""
        fmap = self.features(image)
        grid = (int(fmap.shape[-2]), int(fmap.shape[-1]))
        patches = fmap[0].flatten(1).transpose(0, 1)
        distance = nearest_distance(patches, self.bank, self.bank_sq_norm) / self.distance_scale
        if self.head is None:
            return distance, None, grid, patches
        logits = self.head(patches, distance)
        return anomaly_logit(logits), logits, grid, patches

    def image_score(self, smoothed: torch.Tensor, patches: torch.Tensor) -> torch.Tensor:
        """Raw image score [1]: the map's maximum, stacked with the pooled features if an image
        head learnt from anomalous images (image_head.py)."""
        raw = smoothed.amax(dim=(1, 2, 3))
        return raw if self.image_head is None else self.image_head(raw, patches)

    def score_map(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(raw image score [1], smoothed map [1, 1, h', w'])."""
        amap, _, grid, patches = self.patch_logits(image)
        smoothed = self.smoother(amap.view(1, 1, *grid))
        return self.image_score(smoothed, patches), smoothed

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        amap, logits, grid, patches = self.patch_logits(image)
        smoothed = self.smoother(amap.view(1, 1, *grid))
        raw = self.image_score(smoothed, patches)
        score = torch.sigmoid((raw - self.center) / self.scale)
        if not self.segmentation:
            return (score,)
        size = (self.height, self.width)
        full = F.interpolate(smoothed, size=size, mode="bilinear", align_corners=False)[0, 0]
        anomalous = full >= self.pixel_threshold
        num_labels = int(self.palette.shape[0]) - 1
        if num_labels == 1 or logits is None:
            label_index = anomalous.to(torch.int64)
        else:
            label_logits = logits[:, 1:].transpose(0, 1).reshape(1, num_labels, *grid)
            label_full = F.interpolate(label_logits, size=size, mode="bilinear", align_corners=False)[0]
            label_index = torch.where(anomalous, label_full.argmax(dim=0) + 1, torch.zeros_like(full).long())
        mask = self.palette[label_index]
        areas = (label_index.unsqueeze(0) == self.label_ids).to(torch.float32).mean(dim=(1, 2))
        return score, mask, areas
