"""Time dataset import and evaluation on the cookies dataset (63 images, 576x768).

The model is the synthetic bright-blob segmentation package at the cookies' size: the cost
measured is the evaluator's (decode, Predictor.predict, mask comparison, files, report), not a
trained network's. Usage: .venv/bin/python bench/evaluation_cookies.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
from pathlib import Path

from edge_agent.dataset import load_dataset
from edge_agent.evaluation import evaluate
from edge_agent.testing.onnx_models import bright_blob_package

COOKIES = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "cookies"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--manifest", type=Path, default=COOKIES / "train.manifest")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    timings: dict[str, list[float]] = {"load_dataset": [], "evaluate": [], "evaluate+files+report": []}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        dataset = load_dataset(args.manifest)
        package = bright_blob_package(
            root / "pkg", width=dataset.width, height=dataset.height, segmentation=True
        )
        for i in range(args.repeat):
            start = time.perf_counter()
            dataset = load_dataset(args.manifest)
            loaded = time.perf_counter()
            evaluate(package.directory, dataset)
            scored = time.perf_counter()
            evaluate(package.directory, dataset, root / f"out{i}")
            written = time.perf_counter()
            timings["load_dataset"].append(loaded - start)
            timings["evaluate"].append(scored - loaded)
            timings["evaluate+files+report"].append(written - scored)
    images = len(dataset.samples)
    print(f"{images} images {dataset.width}x{dataset.height}, {args.repeat} runs (median, min..max)")
    for name, values in timings.items():
        print(
            f"{name:<22} {statistics.median(values):6.2f} s  ({min(values):.2f}..{max(values):.2f})  "
            f"{statistics.median(values) / images * 1000:6.1f} ms/image"
        )


if __name__ == "__main__":
    main()
