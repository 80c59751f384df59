"""The exported model: one module from the client's uint8 bitmap to score, mask and label areas.

It is both what training scores its held-out folds with (through `score_map`) and what is exported
to ONNX, so the calibrated threshold applies to exactly the computation the agent runs.

uint8 appears only at the graph's boundary: the bitmap is cast to float before anything else, and
the mask is painted from a float palette and cast to uint8 as the last step. TensorRT accepts
UINT8 only as a network input or output next to a cast (docs/gpu.md); the values are the same
(palette entries are whole numbers 0..255, exact in float32, and the cast is exact for them).
Label indices are int32 and padding is a static index lookup, so no int64 data and no shape
arithmetic reach the runtime beyond what TensorRT 8.5 parses (tests/unit/training/test_trt_rules.py).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from edge_agent.training.features import PatchFeatures
from edge_agent.training.head import PatchHead, anomaly_logit
from edge_agent.training.image_head import ImageHead
from edge_agent.training.memory_bank import augmented_bank, nearest_distance

MAP_UPSAMPLE = 4  # the anomaly map is smoothed at 4x the feature grid
SMOOTH_SIGMA = 2.0  # Gaussian sigma, in pixels of the upsampled map


def reflect_index(size: int, radius: int) -> list[int]:
    """Source index of each padded position for reflect padding (the edge is not repeated)."""
    if radius >= size:
        raise ValueError(f"reflect padding {radius} needs more than {radius} samples, got {size}")
    return [abs(i) if i < size else 2 * (size - 1) - i for i in range(-radius, size + radius)]


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
        # Reflect padding as a lookup with constant indices (F.pad's export computes its pads at
        # run time with int64 shape arithmetic, ConstantOfShape included, which TensorRT 8.5 refuses).
        # The padded values are the same elements, so the result is the same to the bit.
        x = self._pad(x, 3)
        x = F.conv2d(x, self.kernel_x)
        return F.conv2d(self._pad(x, 2), self.kernel_y)

    def _pad(self, x: torch.Tensor, dim: int) -> torch.Tensor:
        index = torch.tensor(reflect_index(int(x.shape[dim]), self.radius), dtype=torch.int64)
        return x.index_select(dim, index)


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
        self.register_buffer("bank_aug", augmented_bank(self.bank))  # what the graph multiplies by
        self.distance_scale = float(distance_scale)
        self.head = head
        self.smoother = MapSmoother()
        self.center = float(center)
        self.scale = float(scale)
        self.height, self.width = height, width
        self.segmentation = palette is not None
        if palette is not None:
            # [1 + L, 3], row 0 background; float so the painting runs in float and uint8 is only the
            # output (TensorRT takes UINT8 only at the network's edges)
            self.register_buffer("palette", palette.to(torch.uint8).to(torch.float32))
            self.register_buffer("palette_t", self.palette.t().contiguous())  # [3, 1 + L]
            self.register_buffer(
                "label_ids", torch.arange(palette.shape[0], dtype=torch.int32).view(-1, 1, 1)
            )
        self.pixel_threshold = float(pixel_threshold)
        self.image_head = image_head

    def patch_logits(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None, tuple[int, int]]:
        """Anomaly logit per patch [h*w] and, with a head, all label logits [h*w, 1 + L]."""
        amap, logits, grid, _ = self.patch_outputs(image)
        return amap, logits, grid

    def patch_outputs(
        self, image: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None, tuple[int, int], torch.Tensor]:
        """patch_logits and the patch features [h*w, D] (the image head pools them)."""
        fmap = self.features(image.to(torch.float32))  # the bitmap's only use: uint8 ends here
        grid = (int(fmap.shape[-2]), int(fmap.shape[-1]))
        patches = fmap[0].flatten(1).transpose(0, 1)
        distance = self.patch_distance(patches) / self.distance_scale
        if self.head is None:
            return distance, None, grid, patches
        logits = self.head(patches, distance)
        return anomaly_logit(logits), logits, grid, patches

    def patch_distance(self, patches: torch.Tensor) -> torch.Tensor:
        """Distance of each patch [P, D] to its nearest bank row [P] (memory_bank.nearest_distance)."""
        return nearest_distance(patches, self.bank_aug)

    def image_score(self, smoothed: torch.Tensor, patches: torch.Tensor) -> torch.Tensor:
        """Raw image score [1]: the map's maximum, stacked with the pooled features if an image
        head learnt from anomalous images (image_head.py)."""
        raw = smoothed.amax(dim=(1, 2, 3))
        return raw if self.image_head is None else self.image_head(raw, patches)

    def score_map(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(raw image score [1], smoothed map [1, 1, h', w'])."""
        amap, _, grid, patches = self.patch_outputs(image)
        smoothed = self.smoother(amap.view(1, 1, *grid))
        return self.image_score(smoothed, patches), smoothed

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        amap, logits, grid, patches = self.patch_outputs(image)
        smoothed = self.smoother(amap.view(1, 1, *grid))
        raw = self.image_score(smoothed, patches)
        score = torch.sigmoid((raw - self.center) / self.scale)
        if not self.segmentation:
            return (score,)
        size = (self.height, self.width)
        full = F.interpolate(smoothed, size=size, mode="bilinear", align_corners=False)
        full = full.view(size)  # not [0, 0]: indexing exports as two Gathers that copy the full-size map
        anomalous = full >= self.pixel_threshold
        mask, areas = self.mask_and_areas(self.label_index(anomalous, logits, grid))
        return score, mask, areas

    def mask_and_areas(self, label_index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 [H, W, 3] mask (each pixel's label colour) and each label's share of the pixels [1 + L].

        The mask is the palette times the labels' one-hot planes, which the areas need anyway: a
        [3, 1 + L] x [1 + L, H*W] MatMul. Each sum has a single non-zero term, so the colours are
        exact. It replaced a palette Gather at every pixel, which moved 3 floats per index and took
        12% of the cookies graph. The three colour planes are then interleaved by a Concat on a new
        last axis, not a Transpose: ONNX Runtime's Transpose of [3, H, W] to [H, W, 3] took 16% of
        the cookies graph on a 2-core Xeon, and the Concat made the graph 0.84 as long there, with
        the same bytes (bench/README.md#a-faster-model)."""
        one_hot = (label_index.unsqueeze(0) == self.label_ids).to(torch.float32)  # [1 + L, H, W]
        planes = (self.palette_t @ one_hot.flatten(1)).view(3, self.height, self.width)
        mask = torch.stack(planes.unbind(0), dim=-1).to(torch.uint8)
        return mask, one_hot.mean(dim=(1, 2))

    def label_index(
        self, anomalous: torch.Tensor, logits: torch.Tensor | None, grid: tuple[int, int]
    ) -> torch.Tensor:
        """int32 [H, W]: 0 for background, else 1 + the label with the largest upsampled logit."""
        num_labels = int(self.palette.shape[0]) - 1
        if num_labels == 1 or logits is None:
            return anomalous.to(torch.int32)
        label_logits = logits[:, 1:].transpose(0, 1).reshape(1, num_labels, *grid)
        size = (self.height, self.width)
        label_full = F.interpolate(label_logits, size=size, mode="bilinear", align_corners=False)
        label_full = label_full.view(num_labels, *size)  # not [0]: a Gather would copy it
        best = label_full.argmax(dim=0).to(torch.int32) + 1
        return torch.where(anomalous, best, torch.zeros_like(best))
