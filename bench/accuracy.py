"""Accuracy, training time, memory, size and CPU latency of the trainer on a real dataset.

Trains one model per seed on a single dataset split by the trainer (seeded, stratified), evaluates
it through the exported package (edge_agent.evaluation, i.e. Predictor + ONNX Runtime) and prints a
markdown table. Default: the cookies dataset of the guide's getting-started chapter.

    .venv/bin/python bench/accuracy.py --seeds 0 1 2 3 4
    .venv/bin/python bench/accuracy.py --no-head          # plain PatchCore, for comparison

Timings are wall-clock on a shared machine: repeat and compare medians. Peak RSS is the bench
process's high-water mark (ru_maxrss), so it covers the largest run so far.
"""

from __future__ import annotations

import argparse
import dataclasses
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from edge_agent.imaging.overlay import read_rgb
from edge_agent.inference import Predictor
from edge_agent.training import TrainConfig, train
from edge_agent.training.features import FeatureConfig
from edge_agent.training.fit import FitSettings

COOKIES = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "cookies" / "train.manifest"


def latency_ms(package_dir: Path, images: list[np.ndarray], repeats: int = 3) -> float:
    """Median per-image latency of Predictor.predict (ONNX Runtime CPU, default threads)."""
    predictor = Predictor.open(package_dir)
    try:
        predictor.predict(images[0])  # warm-up
        times = []
        for _ in range(repeats):
            for image in images:
                start = time.perf_counter()
                predictor.predict(image)
                times.append((time.perf_counter() - start) * 1000)
        return statistics.median(times)
    finally:
        predictor.close()


def run_seed(args: argparse.Namespace, seed: int, workdir: Path) -> dict[str, float | str]:
    features = FeatureConfig(long_side=args.long_side)
    fit = dataclasses.replace(
        FitSettings(),
        supervised=not args.no_head,
        head_hidden=args.head_hidden,
        positive_fraction=args.positive_fraction,
    )
    config = TrainConfig(
        dataset=args.dataset,
        output=workdir / f"model-{seed}",
        image_root=args.image_root,
        seed=seed,
        test_fraction=args.test_fraction,
        progress=False,
        features=features,
        fit=fit,
    )
    result = train(config)
    summary = result.evaluation
    assert summary is not None, "the split left no test images"
    row: dict[str, float | str] = {
        "seed": seed,
        "train/test": f"{len(result.train_dataset.samples)}/{len(summary.images)}",
        "ROC AUC": summary.metrics.roc_auc or 0.0,
        "F1": summary.metrics.f1 or 0.0,
        "FP": summary.metrics.confusion.fp,
        "FN": summary.metrics.confusion.fn,
        "train s": result.timings_s["train_total"],
        "size MiB": result.package.graph_path.stat().st_size / 2**20,
    }
    for label in summary.labels:
        row[f"IoU {label.name}"] = label.aiou if label.aiou is not None else float("nan")
    images = [read_rgb(r.sample.image) for r in summary.images[:8]]
    row["latency ms"] = latency_ms(result.package.directory, images)
    row["peak RSS MiB"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return row


def markdown(rows: list[dict[str, float | str]]) -> str:
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]

    def fmt(value: float | str) -> str:
        return f"{value:.3f}" if isinstance(value, float) else str(value)

    for row in rows:
        lines.append("| " + " | ".join(fmt(row.get(k, "")) for k in keys) + " |")
    numeric = [k for k in keys if all(isinstance(r.get(k), float) for r in rows)]
    means = {k: statistics.fmean(float(r[k]) for r in rows) for k in numeric}
    mins = {k: min(float(r[k]) for r in rows) for k in numeric}
    lines.append("| mean | " + " | ".join(fmt(means[k]) if k in means else "" for k in keys[1:]) + " |")
    lines.append("| min | " + " | ".join(fmt(mins[k]) if k in mins else "" for k in keys[1:]) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default=str(COOKIES))
    parser.add_argument("--image-root", type=Path)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument(
        "--test-fraction", type=float, default=0.37, help="cookies: 20 N + 20 A train, 23 test"
    )
    parser.add_argument("--long-side", type=int, default=FeatureConfig.long_side)
    parser.add_argument("--head-hidden", type=int, default=FitSettings.head_hidden)
    parser.add_argument("--positive-fraction", type=float, default=FitSettings.positive_fraction)
    parser.add_argument("--no-head", action="store_true", help="plain PatchCore (no supervised head)")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-accuracy-") as tmp:
        for seed in args.seeds:
            rows.append(run_seed(args, seed, Path(tmp)))
            print(rows[-1], file=sys.stderr, flush=True)
    settings = {k: v for k, v in vars(args).items() if k != "seeds"}
    print(f"settings: {settings}\n")
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
