"""`edge-agent train DATASET --output MODEL_DIR`: train, export and evaluate one model version."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "dataset", metavar="DATASET", help="training manifest file, s3://bucket/key manifest, or folder"
    )
    parser.add_argument(
        "--output", type=Path, required=True, metavar="MODEL_DIR", help="model package folder to create"
    )
    parser.add_argument(
        "--test-dataset",
        metavar="DATASET",
        help="separate test dataset; without it DATASET is split (seeded) into train and test",
    )
    parser.add_argument(
        "--image-root",
        type=Path,
        help="local copy of the bucket (or of a folder in it) that s3:// references map to",
    )
    parser.add_argument(
        "--model-type",
        choices=["auto", "classification", "segmentation"],
        default="auto",
        help="auto (default): segmentation when the anomalous images have masks, as the guide infers it",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the split and the fit (default 0)")
    parser.add_argument(
        "--project", default="", help="project name in the model ARN (default: MODEL_DIR's name)"
    )
    parser.add_argument("--model-version", type=int, default=1, help="model version in the ARN (default 1)")
    parser.add_argument(
        "--test-fraction",
        type=float,
        default=0.2,
        help="single dataset: share of normal and of each anomaly type held out for testing (default 0.2)",
    )
    parser.add_argument(
        "--refit-all",
        action="store_true",
        help="single dataset: train the served model on every image (nothing held out); the evaluation "
        "is then out of fold, marked as such (small datasets; not with --test-dataset)",
    )
    parser.add_argument(
        "--features",
        choices=["auto", "standard", "fine"],
        default="auto",
        help="patch features: auto (default) measures standard and fine on a classification project's "
        "training images and keeps standard unless fine separates clearly better; fine samples the image "
        "at 448 px instead of 320 with a bank of at most 600 patches (thin defects, about 1.3 times the latency)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace MODEL_DIR if it exists")
    parser.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bars (they are off anyway when stderr is no terminal)",
    )
    parser.add_argument("--json", action="store_true", help="print a JSON summary instead of tables")


def run(args: argparse.Namespace) -> int:
    from edge_agent.training import TrainConfig, train
    from edge_agent.training.feature_choice import CANDIDATES

    config = TrainConfig(
        dataset=args.dataset,
        output=args.output,
        test_dataset=args.test_dataset,
        image_root=args.image_root,
        model_type=args.model_type,
        seed=args.seed,
        project=args.project,
        model_version=args.model_version,
        test_fraction=args.test_fraction,
        refit_all=args.refit_all,
        features=None if args.features == "auto" else CANDIDATES[args.features],
        overwrite=args.overwrite,
        progress=not args.no_progress and sys.stderr.isatty(),
    )
    result = train(config)
    manifest = result.package.manifest
    if args.json:
        summary = result.evaluation
        print(
            json.dumps(
                {
                    "model_dir": str(result.package.directory),
                    "model_arn": manifest.model_arn,
                    "model_type": manifest.model_type,
                    "threshold": manifest.threshold,
                    "timings_s": result.timings_s,
                    "training_images": len(result.train_dataset.samples),
                    "refit_all": config.refit_all,
                    "evaluation_basis": summary.evaluation_basis if summary else None,
                    "performance": summary.performance if summary else None,
                    "roc_auc": summary.metrics.roc_auc if summary else None,
                    "labels": {
                        label.name: {"f1": label.f1, "aiou": label.aiou}
                        for label in (summary.labels if summary else ())
                    },
                },
                sort_keys=True,
            )
        )
        return 0
    print(f"model dir   {result.package.directory}")
    print(
        f"trained     {len(result.train_dataset.samples)} images in {result.timings_s['train_total']:.1f} s"
    )
    if config.refit_all:
        print("refit       on every image of the dataset: none was held out from the served model")
    if result.evaluation is None:
        print("evaluation  skipped: no test images")
        return 0
    from edge_agent.cli.evaluate import print_table

    print_table(result.evaluation)
    return 0
