"""Accuracy, training time, memory and CPU latency of the trainer over several datasets, in one command.

For each dataset: train a model (default: memory bank + what it learns from the anomalous images)
and, for comparison, plain memory-bank scoring with the same features (`--no-head`), evaluate each
through its exported package (edge_agent.evaluation, i.e. Predictor + ONNX Runtime) on images the
model never saw, and print one markdown table.

    .venv/bin/python bench/accuracy.py                          # every dataset, seed 0, both models
    .venv/bin/python bench/accuracy.py --datasets cookies-cls figure-cls --seeds 0 1 2
    .venv/bin/python bench/accuracy.py --only-head              # skip the --no-head rows

Datasets (`--datasets`):
- cookies-seg: the guide's cookies (../shared/datasets/cookies/train.manifest, masks), split by the
  trainer (stratified, 37% test: 20 normal + 20 anomalous to train, 23 to test);
- cookies-cls: the same images as a classification project (train-classification-s3.manifest,
  s3:// references resolved to the folder), same split;
- plate-cls, texture-cls, figure-cls: synthetic sets of edge_agent.testing.synthetic (machined
  plates; grayscale brick texture with thin cracks; figurines with a missing limb or a paint fleck),
  30 normal + 10 anomalous to train, a separately generated 20 + 20 to test;
- figure-cls-5: figurines with only 5 anomalous training images.

The default rows let the trainer choose the features (`--features auto`, feature_choice.py; the
`features` column says which); the `--no-head` rows are trained afterwards with the features the
default model of the same dataset and seed chose, so the two differ only in what is learnt.

Every training runs in its own child process, so peak RSS is that training's (ru_maxrss of the
child), and the training time is the trainer's own `train_total`. Timings are wall-clock on a
shared machine: repeat and compare medians.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
COOKIES = ROOT.parent / "shared" / "datasets" / "cookies"
SYNTHETIC_SIZE = (224, 224)
DATASETS = ("cookies-seg", "cookies-cls", "plate-cls", "texture-cls", "figure-cls", "figure-cls-5")


def latency_ms(package_dir: Path, images: list[np.ndarray], repeats: int = 3) -> float:
    """Median per-image latency of Predictor.predict (ONNX Runtime CPU, default threads)."""
    from edge_agent.inference import Predictor

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


def dataset_config(name: str, seed: int, workdir: Path, model: str = "") -> dict[str, Any]:
    """TrainConfig arguments of one benchmark dataset (synthetic sets are written under workdir)."""
    if name == "cookies-seg":
        return {"dataset": COOKIES / "train.manifest", "test_fraction": 0.37}
    if name == "cookies-cls":
        return {
            "dataset": COOKIES / "train-classification-s3.manifest",
            "image_root": COOKIES,
            "test_fraction": 0.37,
        }
    from edge_agent.testing.synthetic import write_synthetic_dataset

    scene, _, rest = name.partition("-cls")
    anomalous = int(rest[1:]) if rest else 10
    root = workdir / f"data-{name}-{seed}-{model}"
    base = 1000 * (DATASETS.index(name) + 1) + 10 * seed
    common: dict[str, Any] = {"size": SYNTHETIC_SIZE, "labels": (), "scene": scene}
    train = write_synthetic_dataset(root, 30, anomalous, seed=base, prefix="train-", **common)
    test = write_synthetic_dataset(root, 20, 20, seed=base + 1, prefix="test-", **common)
    return {"dataset": train, "test_dataset": test, "check_minimums": False}


def run_one(spec: dict[str, Any]) -> dict[str, Any]:
    """One training + evaluation (in a child process): the row's figures."""
    from edge_agent.imaging.overlay import read_rgb
    from edge_agent.training import TrainConfig, train
    from edge_agent.training.feature_choice import CANDIDATES
    from edge_agent.training.fit import FitSettings

    workdir = Path(spec["workdir"])
    config = TrainConfig(
        output=workdir / f"model-{spec['dataset']}-{spec['seed']}-{spec['model']}",
        seed=spec["seed"],
        progress=False,
        features=CANDIDATES[spec["features"]] if spec.get("features") else None,
        fit=dataclasses.replace(FitSettings(), supervised=spec["model"] != "no-head"),
        **dataset_config(spec["dataset"], spec["seed"], workdir, spec["model"]),
    )
    result = train(config)
    summary = result.evaluation
    assert summary is not None, "no test images"
    metrics = summary.metrics
    images = [read_rgb(r.sample.image) for r in summary.images[:8]]
    provenance = result.package.manifest.provenance
    ious = [label.aiou for label in summary.labels if label.aiou is not None]  # segmentation
    return {
        "dataset": spec["dataset"],
        "model": spec["model"],
        "seed": spec["seed"],
        "train N/A": f"{len(result.train_dataset.normal)}/{len(result.train_dataset.anomalous)}",
        "test": len(summary.images),
        "ROC AUC": metrics.roc_auc or 0.0,
        "F1": metrics.f1 or 0.0,
        "recall": metrics.recall or 0.0,
        "precision": metrics.precision or 0.0,
        "train s": result.timings_s["train_total"],
        "peak RSS MiB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "latency ms": latency_ms(result.package.directory, images),
        "IoU": statistics.fmean(ious) if ious else "",
        "features": provenance["features"]["choice"]["chosen"],
        "algorithm": provenance["algorithm"],
    }


def _child(spec: dict[str, Any]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, "--run-one", json.dumps(spec)],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    row = json.loads(done.stdout.strip().splitlines()[-1])
    print(row, file=sys.stderr, flush=True)
    return row


def markdown(rows: list[dict[str, Any]]) -> str:
    keys = [k for k in rows[0] if k != "algorithm"] + ["algorithm"]
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]

    def fmt(value: object) -> str:
        return f"{value:.3f}" if isinstance(value, float) else str(value)

    for row in rows:
        lines.append("| " + " | ".join(fmt(row.get(k, "")) for k in keys) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", choices=DATASETS, default=list(DATASETS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--only-head", action="store_true", help="skip the plain memory-bank rows")
    parser.add_argument("--no-head", action="store_true", help="only the plain memory-bank rows")
    parser.add_argument("--jobs", type=int, default=1, help="trainings at a time (default 1: timings)")
    parser.add_argument("--run-one", help=argparse.SUPPRESS)  # JSON spec: the child's job
    args = parser.parse_args()
    if args.run_one:
        print(json.dumps(run_one(json.loads(args.run_one))), flush=True)
        return 0
    models = ["no-head"] if args.no_head else ["default"] if args.only_head else ["default", "no-head"]
    with tempfile.TemporaryDirectory(prefix="bench-accuracy-") as tmp:
        rows: list[dict[str, Any]] = []
        chosen: dict[tuple[str, int], str] = {}
        for model in models:  # default first: --no-head rows use the features it chose
            specs = [
                {
                    "dataset": dataset,
                    "seed": seed,
                    "model": model,
                    "workdir": tmp,
                    "features": chosen.get((dataset, seed), "") if model == "no-head" else "",
                }
                for dataset in args.datasets
                for seed in args.seeds
            ]
            with ThreadPoolExecutor(max_workers=args.jobs) as pool:
                done = list(pool.map(_child, specs))
            chosen.update({(row["dataset"], row["seed"]): row["features"] for row in done})
            rows.extend(done)
        rows.sort(
            key=lambda row: (args.datasets.index(row["dataset"]), row["seed"], models.index(row["model"]))
        )
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
