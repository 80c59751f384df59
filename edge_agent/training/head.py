"""The supervised patch head: a small MLP on (patch feature, memory-bank distance) -> label logits.

Class 0 is "normal", classes 1..L the dataset's anomaly labels. It learns from the patches that
the users' masks mark, and sees the memory-bank distance as one more input, so it can fall back on
"unlike any normal patch" where the masks have taught it nothing.
"""

from __future__ import annotations

import torch
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
    with torch.no_grad():
        inputs = head.inputs(features, distance)  # fixed during training: standardised once, not per step
        step = WeightedCrossEntropyStep(head.net, inputs, targets, sample_weight)
        for _ in range(steps):
            step.set_gradients()
            optimizer.step()
    head.eval()
    for parameter in head.parameters():
        parameter.requires_grad_(False)
    return head


class WeightedCrossEntropyStep:
    """The gradients of the class-weighted cross-entropy of an MLP (Linear, ReLU, ..., Linear) on a
    fixed batch, written out instead of autograd's.

    The head trains full-batch on up to 15,000 normal patches plus the defect patches, and it is
    most of a cookies training. The same two large products remain (the first layer forward and its
    weight gradient, taken as (inputs^T dH)^T from a transposed copy of the inputs made once); what
    goes is autograd's bookkeeping and its extra passes over the [patches, hidden] activations: 0.9
    to 0.95 of autograd's step on 31,000 rows (bench/README.md#training-time). tests/unit/training/test_head.py compares with autograd.
    """

    def __init__(self, net: nn.Sequential, inputs: torch.Tensor, targets: torch.Tensor, weight: torch.Tensor):
        self.layers = [m for m in net if isinstance(m, nn.Linear)]
        kinds = [type(m) for m in net]
        expected = [nn.Linear, nn.ReLU] * (len(self.layers) - 1) + [nn.Linear]
        if kinds != expected:
            raise TypeError(f"WeightedCrossEntropyStep takes Linear/ReLU stacks, got {kinds}")
        self.inputs = inputs
        self.inputs_t = inputs.t().contiguous()
        self.targets = targets
        self.rows = torch.arange(len(targets))
        self.weight = weight.unsqueeze(1)

    def set_gradients(self) -> float:
        """Forward, then each parameter's .grad set to the loss's gradient; returns the loss."""
        activations = [self.inputs]
        x = self.inputs
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            x = torch.addmm(layer.bias, x, layer.weight.t())
            if i < last:
                x.clamp_min_(0.0)
                activations.append(x)
        log_p = torch.log_softmax(x, dim=1)
        loss = -float((log_p[self.rows, self.targets] * self.weight[:, 0]).sum())
        grad = log_p.exp_()  # softmax - one-hot, times each row's weight
        grad[self.rows, self.targets] -= 1.0
        grad.mul_(self.weight)
        for i in range(last, -1, -1):
            layer, a = self.layers[i], activations[i]
            layer.weight.grad = (self.inputs_t @ grad).t().contiguous() if i == 0 else grad.t() @ a
            layer.bias.grad = grad.sum(0)
            if i > 0:
                grad = (grad @ layer.weight).mul_(a > 0)
        return loss
