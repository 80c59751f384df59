"""Probe: cookies (seed 0, the default split), patch features projected to fewer dimensions.

Each argument is a dimension count (0: no projection). The projection is PCA on the training
normals' patches (20,000 sampled), appended to the feature extractor as a 1x1 convolution, so the
memory bank, the nearest-neighbour search and the patch head all see the projected features, and
the exported graph computes them. Prints accuracy on the held-out images and the graphs' raw p50
in alternating blocks (bench/model_speed.py's `time_graphs`).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from model_speed import COOKIES, time_graphs

from edge_agent.imaging.overlay import read_rgb
from edge_agent.training import TrainConfig, train, trainer
from edge_agent.training.features import PatchFeatures

STATE: dict[str, object] = {"basis": None, "dims": 0}
_extract = trainer._extract_features
_forward = PatchFeatures.forward


def extract(extractor: PatchFeatures, dataset, progress: bool) -> torch.Tensor:
    STATE["basis"] = None
    feats = _extract(extractor, dataset, progress)
    if not STATE["dims"]:
        return feats
    normal = torch.tensor([not s.is_anomalous for s in dataset.samples])
    rows = feats[normal].permute(0, 2, 3, 1).reshape(-1, feats.shape[1]).double()
    rows = rows - rows.mean(0)
    sample = rows[torch.randperm(len(rows), generator=torch.Generator().manual_seed(0))[:20000]]
    _, _, v = torch.linalg.svd(sample, full_matrices=False)
    STATE["basis"] = v[: int(STATE["dims"])].float().contiguous()  # [d, D]
    return torch.einsum("ndhw,ed->nehw", feats, STATE["basis"])


def forward(self: PatchFeatures, image: torch.Tensor) -> torch.Tensor:
    out = _forward(self, image)
    basis = STATE["basis"]
    return out if basis is None else torch.nn.functional.conv2d(out, basis[:, :, None, None])


def main() -> int:
    trainer._extract_features = extract
    PatchFeatures.forward = forward
    work = Path(tempfile.mkdtemp(prefix="pca-distance-"))
    graphs, image = {}, None
    for dims in [int(a) for a in sys.argv[1:]] or [0, 64]:
        STATE["dims"] = dims
        config = TrainConfig(
            dataset=COOKIES, output=work / f"m{dims}", seed=0, project="cookies", progress=False
        )
        result = train(config)
        summary = result.evaluation
        iou = statistics.fmean(label.aiou for label in summary.labels if label.aiou is not None)
        print(f"dims {dims}: ROC AUC {summary.metrics.roc_auc:.3f} F1 {summary.metrics.f1:.3f} IoU {iou:.4f}")
        graphs[dims] = result.package.graph_path
        if image is None:
            image = read_rgb(next(r for r in summary.images if r.sample.is_anomalous).sample.image)
    times = time_graphs(graphs, image, 15, 10)
    base = statistics.median(times[next(iter(graphs))])
    for dims, values in times.items():
        print(
            f"dims {dims}: raw p50 {statistics.median(values):.2f} ms, {statistics.median(values) / base:.3f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
