"""`edge-agent dataset validate|convert-csv|split`: check and prepare datasets before training."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from edge_agent.dataset.types import Dataset


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="dataset_command", required=True, metavar="ACTION")

    check = sub.add_parser(
        "validate", help="import a manifest or folder and check it against the guide's rules"
    )
    _add_source(check)
    check.add_argument(
        "--role",
        choices=["single", "train", "test"],
        default="single",
        help="which minimum counts apply: one dataset split by the trainer, or a separate train/test set",
    )
    check.add_argument("--json", action="store_true", help="print the summary as one JSON object")

    convert = sub.add_parser(
        "convert-csv", help="the guide's CSV (image,normal|anomaly) to manifest conversion"
    )
    convert.add_argument("csv", type=Path, metavar="CSV")
    convert.add_argument(
        "--output", type=Path, help="manifest to write (default: <csv stem>.manifest beside it)"
    )
    convert.add_argument("--s3-path", default="", help="s3://bucket/folder/ prepended to bare image names")

    split = sub.add_parser("split", help="seeded stratified split into train.manifest and test.manifest")
    _add_source(split)
    split.add_argument(
        "--output-dir", type=Path, required=True, help="folder for train.manifest and test.manifest"
    )
    split.add_argument("--test-fraction", type=float, default=0.2)
    split.add_argument("--seed", type=int, default=0)


def _add_source(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", metavar="SOURCE", help="manifest file, s3://bucket/key manifest, or folder")
    parser.add_argument(
        "--image-root",
        type=Path,
        help="local copy of the bucket (or of a folder in it) that s3:// references map to",
    )


def run(args: argparse.Namespace) -> int:
    from edge_agent.dataset import load_dataset

    if args.dataset_command == "convert-csv":
        return _convert(args)
    dataset = load_dataset(args.source, image_root=args.image_root)
    if args.dataset_command == "split":
        return _split(args, dataset)
    return _validate(args, dataset)


def summary(dataset: Dataset) -> dict[str, object]:
    return {
        "source": dataset.source,
        "model_type": dataset.model_type,
        "width": dataset.width,
        "height": dataset.height,
        "images": len(dataset.samples),
        "normal": len(dataset.normal),
        "anomalous": len(dataset.anomalous),
        "unlabelled_skipped": dataset.unlabelled,
        "labels": {
            label.name: {
                "hex_color": label.hex_color,
                "images": dataset.label_counts().get(label.name, 0),
                "single_label_images": dataset.single_label_counts().get(label.name, 0),
            }
            for label in dataset.labels
        },
    }


def print_summary(dataset: Dataset) -> None:
    print(f"dataset     {dataset.source}")
    print(f"model type  {dataset.model_type}")
    print(f"image size  {dataset.width}x{dataset.height} (width x height)")
    print(
        f"images      {len(dataset.samples)}: {len(dataset.normal)} normal, {len(dataset.anomalous)} anomalous"
    )
    if dataset.unlabelled:
        print(f"skipped     {dataset.unlabelled} unlabelled (class-name neither normal nor anomaly)")
    if dataset.labels:
        single = dataset.single_label_counts()
        print(f"{'label':<20} {'colour':<8} {'images':>7} {'single-label':>13}")
        for label in dataset.labels:
            count = dataset.label_counts().get(label.name, 0)
            print(f"{label.name:<20} {label.hex_color:<8} {count:>7} {single.get(label.name, 0):>13}")


def _validate(args: argparse.Namespace, dataset: Dataset) -> int:
    from edge_agent.dataset import validate

    if args.json:
        print(json.dumps(summary(dataset), sort_keys=True))
    else:
        print_summary(dataset)
    validate(dataset, role=args.role, check_files=False)  # load_dataset checked every file already
    if not args.json:
        print(f"valid as a {args.role} dataset")
    return 0


def _convert(args: argparse.Namespace) -> int:
    from edge_agent.dataset import convert_csv

    result = convert_csv(args.csv, output=args.output, s3_path=args.s3_path)
    print(f"wrote {result.manifest}")
    print(f"images      {result.total}: {result.normal} normal, {result.anomalous} anomalous")
    return 0


def _split(args: argparse.Namespace, dataset: Dataset) -> int:
    from edge_agent.dataset import split_dataset, write_manifest

    train, test = split_dataset(dataset, test_fraction=args.test_fraction, seed=args.seed)
    for name, part in (("train", train), ("test", test)):
        path = write_manifest(args.output_dir / f"{name}.manifest", part.samples, part.labels)
        print(f"{name:<6} {path}: {len(part.normal)} normal, {len(part.anomalous)} anomalous")
    return 0
