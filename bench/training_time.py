"""Training time for 100 images on this machine's cores: the issue's "3 minutes for 100 images".

Writes synthetic machined-plate datasets of 100 images (70 normal + 30 anomalous; with masks 60 + 40,
the guide's 20 per label) at --size with
edge_agent.testing.synthetic, as a classification project (folders of labels, no masks: memory
bank + image head check) and as a segmentation project (masks, two labels: memory bank + patch
head), trains each with `edge-agent train`'s defaults (20% held out, so 80 images are learnt from)
in its own child process, and prints the trainer's own timings and the child's peak RSS.

    .venv/bin/python bench/training_time.py                  # 640x480
    .venv/bin/python bench/training_time.py --size 1024x768
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

KINDS = {"classification": (), "segmentation": (("scratch", "#2CA02C"), ("stain", "#1F77B4"))}


def run_one(kind: str, size: tuple[int, int], root: Path) -> dict[str, object]:
    import resource

    from edge_agent.testing.synthetic import write_synthetic_dataset
    from edge_agent.training import TrainConfig, train

    # Segmentation: 20 images per label, the guide's minimum for a single dataset.
    normal, anomalous = (70, 30) if kind == "classification" else (60, 40)
    manifest = write_synthetic_dataset(root / kind, normal, anomalous, size, KINDS[kind], seed=7)
    result = train(TrainConfig(dataset=manifest, output=root / f"model-{kind}", progress=False))
    return {
        "kind": kind,
        "images": len(result.train_dataset.samples) + len(result.test_dataset.samples),
        "trained on": len(result.train_dataset.samples),
        "algorithm": result.package.manifest.provenance["algorithm"],
        **{k: round(v, 1) for k, v in result.timings_s.items()},
        "peak RSS MiB": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "F1": result.evaluation.metrics.f1,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", default="640x480", help="WIDTHxHEIGHT of the images (default 640x480)")
    parser.add_argument("--kinds", nargs="+", choices=list(KINDS), default=list(KINDS))
    parser.add_argument("--run-one", nargs=2, metavar=("KIND", "ROOT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    if args.run_one:
        print(json.dumps(run_one(args.run_one[0], size, Path(args.run_one[1]))))
        return 0
    with tempfile.TemporaryDirectory(prefix="training-time-") as tmp:
        for kind in args.kinds:
            done = subprocess.run(
                [sys.executable, __file__, "--size", args.size, "--run-one", kind, tmp],
                check=True,
                capture_output=True,
                text=True,
            )
            print(done.stdout.strip().splitlines()[-1], flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
