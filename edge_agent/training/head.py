"""The supervised patch head: a small MLP on (patch feature, memory-bank distance) -> label logits.

Class 0 is "normal", classes 1..L the dataset's anomaly labels. It learns from the patches that
the users' masks mark, and sees the memory-bank distance as one more input, so it can fall back on
"unlike any normal patch" where the masks have taught it nothing.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class PatchHead(nn.Module):
    """Standardises its inputs itself (buffers), so the exported graph feeds raw features."""

    def __init__(self, feature_dim: int, num_classes: int, hidden: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(feature_dim))
        self.register_buffer("std", torch.ones(feature_dim))
        layers: list[nn.Module]
        if hidden > 0:
            layers = [nn.Linear(feature_dim + 1, hidden), nn.ReLU(), nn.Linear(hidden, num_classes)]
        else:
            layers = [nn.Linear(feature_dim + 1, num_classes)]
        self.net = nn.Sequential(*layers)

    def forward(self, features: torch.Tensor, distance: torch.Tensor) -> torch.Tensor:
        """features [P, D], distance [P] (already scaled) -> logits [P, 1 + L]."""
        return self.net(self.inputs(features, distance))

    def inputs(self, features: torch.Tensor, distance: torch.Tensor) -> torch.Tensor:
        """The standardised features beside the distance: the network's input [P, D + 1]."""
        x = (features - self.mean) / self.std
        return torch.cat([x, distance.unsqueeze(1)], dim=1)


def anomaly_logit(logits: torch.Tensor) -> torch.Tensor:
    """log P(any anomaly) - log P(normal): one map whatever the number of labels."""
    return torch.logsumexp(logits[:, 1:], dim=1) - logits[:, 0]


def fit_head(
    features: torch.Tensor,
    distance: torch.Tensor,
    targets: torch.Tensor,
    num_classes: int,
    hidden: int,
    steps: int,
    weight_decay: float,
    seed: int,
) -> PatchHead:
    """Full-batch Adam on class-balanced cross-entropy (defect patches are a few percent of all)."""
    torch.manual_seed(seed)
    head = PatchHead(features.shape[1], num_classes, hidden)
    head.mean.copy_(features.mean(0))
    head.std.copy_(features.std(0) + 1e-6)
    counts = torch.bincount(targets, minlength=num_classes).float()
    present = counts > 0
    class_weight = torch.where(present, 1.0 / counts.clamp_min(1.0), torch.zeros_like(counts))
    class_weight = class_weight / class_weight.sum()
    sample_weight = class_weight[targets]
    optimizer = torch.optim.Adam(head.net.parameters(), lr=1e-2, weight_decay=weight_decay)
    inputs = head.inputs(features, distance)  # fixed during training: standardised once, not per step
    head.train()
    for _ in range(steps):
        optimizer.zero_grad()
        loss = (F.cross_entropy(head.net(inputs), targets, reduction="none") * sample_weight).sum()
        loss.backward()
        optimizer.step()
    head.eval()
    for parameter in head.parameters():
        parameter.requires_grad_(False)
    return head
