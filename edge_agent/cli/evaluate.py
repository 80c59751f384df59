"""`edge-agent evaluate MODEL_DIR DATASET --output DIR`: score a model package on a labelled dataset."""

from __future__ import annotations

import argparse
import json
import textwrap
from pathlib import Path

from edge_agent.evaluation.summary import EvaluationSummary


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "model_dir", type=Path, metavar="MODEL_DIR", help="model package folder (manifest.json)"
    )
    parser.add_argument(
        "dataset", metavar="DATASET", help="manifest file, s3://bucket/key manifest, or folder"
    )
    parser.add_argument(
        "--output", type=Path, required=True, help="folder for the result files and report.html"
    )
    parser.add_argument(
        "--image-root",
        type=Path,
        help="local copy of the bucket (or of a folder in it) that s3:// references map to",
    )
    parser.add_argument("--backend", default="cpu", help="runtime backend: cpu (default) or gpu")
    parser.add_argument(
        "--json", action="store_true", help="print the EvaluationResult JSON instead of a table"
    )


def run(args: argparse.Namespace) -> int:
    from edge_agent.dataset import load_dataset
    from edge_agent.evaluation import evaluate
    from edge_agent.evaluation.files import evaluation_result

    dataset = load_dataset(args.dataset, image_root=args.image_root)
    summary = evaluate(args.model_dir, dataset, output_dir=args.output, backend=args.backend)
    if args.json:
        print(json.dumps(evaluation_result(summary), sort_keys=True))
    else:
        print_table(summary)
    return 0


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.1f}%"


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def print_table(summary: EvaluationSummary) -> None:
    m, c = summary.metrics, summary.metrics.confusion
    print(f"basis       {summary.evaluation_basis}")
    for note in summary.basis_notes():
        for line in textwrap.wrap(note, 88):
            print(f"            {line}")
    print(f"model       {summary.model_arn} ({summary.model_type}, threshold {summary.threshold:.4f})")
    print(f"images      {len(summary.images)} used, {len(summary.skipped)} skipped")
    print(f"confusion   TP {c.tp}  FP {c.fp}  TN {c.tn}  FN {c.fn}")
    print(f"precision   {_pct(m.precision)}")
    print(f"recall      {_pct(m.recall)}")
    print(f"F1 score    {_pct(m.f1)}")
    print(f"ROC AUC     {_num(m.roc_auc)}")
    print(f"avg prec.   {_num(m.average_precision)}")
    if summary.out_of_fold and summary.model_type == "segmentation":
        print(f"pixel IoU   {_num(summary.pixel_iou)} (pooled, out of fold; per-label metrics absent)")
    if summary.labels:
        print(f"{'label':<20} {'images':>6} {'precision':>10} {'recall':>8} {'F1':>8} {'avg IoU':>8}")
        for label in summary.labels:
            print(
                f"{label.name:<20} {label.test_images:>6} {_pct(label.precision):>10} {_pct(label.recall):>8} "
                f"{_pct(label.f1):>8} {_pct(label.aiou):>8}"
            )
    for path in (summary.result_path, summary.manifest_path, summary.report_path):
        if path is not None:
            print(f"wrote       {path}")
