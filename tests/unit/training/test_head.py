"""The patch head's training step: the written-out gradients are autograd's."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from edge_agent.training.head import PatchHead, WeightedCrossEntropyStep, fit_head


def _batch(classes: int, rows: int = 500, dim: int = 9) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(classes)
    inputs = torch.randn(rows, dim, generator=generator)
    targets = torch.randint(0, classes, (rows,), generator=generator)
    weight = torch.rand(rows, generator=generator)
    return inputs, targets, weight


@pytest.mark.parametrize(("hidden", "classes"), [(16, 2), (16, 4), (0, 3)])
def test_the_written_out_gradients_are_autograds(hidden: int, classes: int) -> None:
    inputs, targets, weight = _batch(classes)
    head = PatchHead(inputs.shape[1] - 1, classes, hidden)
    loss = (F.cross_entropy(head.net(inputs), targets, reduction="none") * weight).sum()
    loss.backward()
    want = {name: p.grad.clone() for name, p in head.net.named_parameters()}
    for p in head.net.parameters():
        p.grad = None
    with torch.no_grad():
        got_loss = WeightedCrossEntropyStep(head.net, inputs, targets, weight).set_gradients()
    assert got_loss == pytest.approx(float(loss.detach()), rel=1e-5)
    for name, p in head.net.named_parameters():
        assert torch.allclose(p.grad, want[name], rtol=1e-4, atol=1e-6), name


def test_fit_head_trains_as_autograd_would() -> None:
    """Twenty Adam steps with the written-out gradients land where autograd's land."""
    inputs, targets, _ = _batch(2, rows=400, dim=7)
    features, distance = inputs[:, :-1], inputs[:, -1]
    fitted = fit_head(features, distance, targets, 2, hidden=8, steps=20, weight_decay=1e-3, seed=3)
    torch.manual_seed(3)
    reference = PatchHead(features.shape[1], 2, 8)
    reference.mean.copy_(features.mean(0))
    reference.std.copy_(features.std(0) + 1e-6)
    counts = torch.bincount(targets, minlength=2).float()
    weight = (1.0 / counts / (1.0 / counts).sum())[targets]
    optimizer = torch.optim.Adam(reference.net.parameters(), lr=1e-2, weight_decay=1e-3)
    x = reference.inputs(features, distance)
    for _ in range(20):
        optimizer.zero_grad()
        (F.cross_entropy(reference.net(x), targets, reduction="none") * weight).sum().backward()
        optimizer.step()
    for got, want in zip(fitted.net.parameters(), reference.net.parameters(), strict=True):
        assert torch.allclose(got, want, atol=1e-4)
    assert not fitted.training and not any(p.requires_grad for p in fitted.parameters())


def test_other_layer_stacks_are_refused() -> None:
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    with pytest.raises(TypeError, match="Linear/ReLU"):
        WeightedCrossEntropyStep(net, torch.zeros(2, 3), torch.zeros(2, dtype=torch.long), torch.ones(2))
