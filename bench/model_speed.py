"""The trained cookies model's own speed and accuracy: the v1.4 graph against today's, in one run.

For each seed, trains cookies (`../shared/datasets/cookies/train.manifest`, the default split of
`edge-agent train`: 20% held out) twice, with the memory bank of v1.4 (coreset 10%) and with
today's defaults (5%), and evaluates both on the held-out images through their exported packages
(ROC AUC, F1 at the model's threshold, IoU of `cracked`). On the first seed it also exports the
10% model as v1.4 did (Pads kept, and v1.4's formulas below: the mask painted by a palette Gather
at every pixel, the distances as a MatMul then a Sub and an Add over the [patches, bank] matrix, the
bitmap transposed, pooled and normalised), and today's model with v1.4's formulas, all of them or
all but the painting, then times the graphs with ONNX Runtime's default session in this process, in
alternating blocks on one held-out anomalous image: raw p50 and p99 on the machine's cores.

    .venv/bin/python bench/model_speed.py                 # seed 0
    .venv/bin/python bench/model_speed.py --seeds 0 1 2   # accuracy over three splits
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
import torch.nn.functional as F

from edge_agent.imaging.overlay import read_rgb
from edge_agent.model_package import INPUT_IMAGE
from edge_agent.training import TrainConfig, train
from edge_agent.training.backbone import INPUT_MEAN, INPUT_STD
from edge_agent.training.export import export_onnx
from edge_agent.training.features import PatchFeatures
from edge_agent.training.fit import FitSettings
from edge_agent.training.graph import AnomalyGraph

COOKIES = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "cookies" / "train.manifest"
V14 = "bank 10%, Pads kept, v1.4 formulas (v1.4 graph)"
SETTINGS = {"bank 10% (v1.4)": 0.1, "bank 5% (now)": FitSettings().coreset_fraction}


def v14_mask_and_areas(self: AnomalyGraph, label_index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """v1.4's mask and areas: the same outputs, the mask painted by a palette Gather at every pixel."""
    mask = self.palette[label_index].to(torch.uint8)
    areas = (label_index.unsqueeze(0) == self.label_ids).to(torch.float32).mean(dim=(1, 2))
    return mask, areas


def v14_patch_distance(self: AnomalyGraph, patches: torch.Tensor) -> torch.Tensor:
    """v1.4's distances: |q|^2 - 2 q.b + |b|^2 over the whole [patches, bank] matrix, then the minimum."""
    bank = self.bank
    sq = (patches * patches).sum(1, keepdim=True) - 2.0 * patches @ bank.T + (bank * bank).sum(1).unsqueeze(0)
    return sq.min(dim=1).values.clamp_min(0.0).sqrt()


def v14_network_input(self: PatchFeatures, image: torch.Tensor) -> torch.Tensor:
    """v1.4's input stage: the bitmap cast again, transposed to NCHW, pooled, resized, normalised."""
    h, w = self.work_size
    x = image.permute(2, 0, 1).unsqueeze(0).to(torch.float32)
    factor = max(1, min(int(x.shape[-2]) // h, int(x.shape[-1]) // w))
    if factor > 1:
        x = F.avg_pool2d(x, factor, factor)
    if (int(x.shape[-2]), int(x.shape[-1])) != (h, w):
        x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
    return (x - INPUT_MEAN) / INPUT_STD


V14_FORMULAS = {
    "painting": (AnomalyGraph, "mask_and_areas", v14_mask_and_areas),
    "distance": (AnomalyGraph, "patch_distance", v14_patch_distance),
    "input": (PatchFeatures, "network_input", v14_network_input),
}


@contextmanager
def v14_formulas(*parts: str) -> Iterator[None]:
    """Graphs exported inside compute `parts` (default: all of V14_FORMULAS) as v1.4 did."""
    saved = []
    for part in parts or tuple(V14_FORMULAS):
        cls, name, formula = V14_FORMULAS[part]
        saved.append((cls, name, getattr(cls, name)))
        setattr(cls, name, formula)
    try:
        yield
    finally:
        for cls, name, today in saved:
            setattr(cls, name, today)


def time_graphs(paths: dict[str, Path], image: np.ndarray, rounds: int, calls: int) -> dict[str, list[float]]:
    """Per graph, milliseconds per session.run, blocks of `calls` alternating for `rounds`."""
    sessions = {
        name: ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]) for name, p in paths.items()
    }
    times: dict[str, list[float]] = {name: [] for name in paths}
    for session in sessions.values():
        for _ in range(5):
            session.run(None, {INPUT_IMAGE: image})
    for _ in range(rounds):
        for name, session in sessions.items():
            time.sleep(0.05)  # the previous session's spinning workers go back to sleep
            for _ in range(calls):
                start = time.perf_counter()
                session.run(None, {INPUT_IMAGE: image})
                times[name].append((time.perf_counter() - start) * 1000)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--calls", type=int, default=10)
    args = parser.parse_args()
    rows = []
    graphs: dict[str, Path] = {}
    image = None
    with tempfile.TemporaryDirectory(prefix="model-speed-") as tmp:
        for seed in args.seeds:
            for name, fraction in SETTINGS.items():
                out = Path(tmp) / f"{fraction}-{seed}"
                config = TrainConfig(
                    dataset=COOKIES,
                    output=out,
                    seed=seed,
                    project="cookies",
                    progress=False,
                    fit=dataclasses.replace(FitSettings(), coreset_fraction=fraction),
                )
                result = train(config)
                summary = result.evaluation
                ious = [label.aiou for label in summary.labels if label.aiou is not None]
                rows.append(
                    {
                        "seed": seed,
                        "model": name,
                        "bank": result.details["bank_size"],
                        "ROC AUC": summary.metrics.roc_auc,
                        "F1": summary.metrics.f1,
                        "IoU cracked": statistics.fmean(ious),
                        "train s": result.timings_s["train_total"],
                    }
                )
                print(rows[-1], file=sys.stderr, flush=True)
                if seed == args.seeds[0]:
                    if fraction != 0.1:
                        graphs[f"{name}, Pads folded (today's graph)"] = result.package.graph_path
                    if fraction == 0.1:
                        unfused = Path(tmp) / "v1.4.onnx"
                        with v14_formulas():
                            export_onnx(result.graph, unfused, fuse_pads=False)
                        graphs[V14] = unfused
                        folded = Path(tmp) / "v1.4-folded.onnx"
                        with v14_formulas():
                            export_onnx(result.graph, folded)
                        graphs[f"{name}, Pads folded"] = folded
                    else:
                        for label, parts in (
                            ("v1.4 formulas", ()),
                            ("v1.4 distances and input", ("distance", "input")),
                        ):
                            older = Path(tmp) / f"{label}.onnx"
                            with v14_formulas(*parts):
                                export_onnx(result.graph, older)
                            graphs[f"{name}, Pads folded, {label}"] = older
                    if image is None:
                        anomalous = [r for r in summary.images if r.sample.is_anomalous]
                        image = read_rgb(anomalous[0].sample.image)
        order = [
            V14,
            *[k for k in graphs if "folded" in k and "today" not in k],
            *[k for k in graphs if "today" in k],
        ]
        times = time_graphs({k: graphs[k] for k in order}, image, args.rounds, args.calls)
    print("| seed | model | bank | ROC AUC | F1 | IoU cracked | train s |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['seed']} | {r['model']} | {r['bank']} | {r['ROC AUC']:.3f} | {r['F1']:.3f} | "
            f"{r['IoU cracked']:.3f} | {r['train s']:.1f} |"
        )
    base = float(np.median(times[order[0]]))
    print(f"\n{ort.get_device()} ONNX Runtime {ort.__version__}, {len(times[order[0]])} calls a graph\n")
    print("| graph | raw p50 ms | raw p99 ms | p50 / v1.4 |")
    print("|---|---|---|---|")
    for name in order:
        p50 = float(np.median(times[name]))
        print(f"| {name} | {p50:.2f} | {np.percentile(times[name], 99):.2f} | {p50 / base:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
