"""The graph's input stage: the interleaved box filter is the Transpose, AveragePool and
normalisation it replaced, for every scale factor."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from edge_agent.training.backbone import INPUT_MEAN, INPUT_STD
from edge_agent.training.features import FeatureConfig, box_factor, box_kernel, network_input


def _channels_first(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The input stage before the box filter read the bitmap interleaved (v1.4's formula)."""
    h, w = size
    x = image.permute(2, 0, 1).unsqueeze(0)
    factor = max(1, min(int(x.shape[-2]) // h, int(x.shape[-1]) // w))
    if factor > 1:
        x = F.avg_pool2d(x, factor, factor)
    if (int(x.shape[-2]), int(x.shape[-1])) != (h, w):
        x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
    return (x - INPUT_MEAN) / INPUT_STD


@pytest.mark.parametrize(
    ("height", "width"),
    [(768, 576), (480, 640), (1000, 1000), (333, 250), (97, 61)],  # factors 2, 2, 3, 1, 1; odd edges
)
def test_the_interleaved_box_filter_is_the_channels_first_one(height: int, width: int) -> None:
    image = torch.randint(0, 256, (height, width, 3), generator=torch.Generator().manual_seed(height))
    image = image.to(torch.float32)
    work_w, work_h = FeatureConfig().working_size(width, height)
    kernel = box_kernel(box_factor(height, width, (work_h, work_w)))
    got = network_input(image, (work_h, work_w), kernel)
    want = _channels_first(image, (work_h, work_w))
    assert got.shape == want.shape == (1, 3, work_h, work_w)
    assert float((got - want).abs().max()) < 1e-5
    # the channels are not mixed up: a red-only image has only a red plane above the mean
    red = torch.zeros(height, width, 3)
    red[..., 0] = 255.0
    planes = network_input(red, (work_h, work_w), kernel)[0]
    assert torch.allclose(planes[0], torch.full_like(planes[0], (255 - INPUT_MEAN) / INPUT_STD))
    assert torch.allclose(planes[1:], torch.full_like(planes[1:], -INPUT_MEAN / INPUT_STD))
