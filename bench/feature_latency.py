"""What the automatic feature choice costs in latency, against the v1.4 graph, in one run.

Trains one classification dataset of bench/accuracy.py (default `texture-cls`, where the choice
takes `fine`) three ways and evaluates each on the same held-out images through its package:

- `v1.4`: the model of before the issue (standard features, plain memory-bank scoring with a 10%
  coreset, Pads kept in the graph);
- `standard`: today's trainer with `--features standard`;
- `auto`: today's default, the feature choice (records which candidate it took).

Then times the three exported graphs with ONNX Runtime's default session in this process, in
alternating blocks on one held-out anomalous image (`bench/model_speed.py`'s `time_graphs`).

    .venv/bin/python bench/feature_latency.py
    .venv/bin/python bench/feature_latency.py --dataset figure-cls --seed 1
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from accuracy import DATASETS, dataset_config
from model_speed import time_graphs

from edge_agent.imaging.overlay import read_rgb
from edge_agent.training import TrainConfig, train
from edge_agent.training.export import export_onnx
from edge_agent.training.feature_choice import CANDIDATES, STANDARD
from edge_agent.training.fit import FitSettings

V14 = "v1.4"
MODELS: dict[str, dict[str, Any]] = {
    V14: {
        "features": CANDIDATES[STANDARD],
        "fit": dataclasses.replace(FitSettings(), supervised=False, coreset_fraction=0.1),
    },
    "standard": {"features": CANDIDATES[STANDARD], "fit": FitSettings()},
    "auto": {"features": None, "fit": FitSettings()},
}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", default="texture-cls", choices=[d for d in DATASETS if "-cls" in d])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--calls", type=int, default=10)
    args = parser.parse_args()
    rows: dict[str, dict[str, Any]] = {}
    graphs: dict[str, Path] = {}
    image = None
    with tempfile.TemporaryDirectory(prefix="feature-latency-") as tmp:
        work = Path(tmp)
        for name, model in MODELS.items():
            result = train(
                TrainConfig(
                    output=work / f"model-{name}",
                    seed=args.seed,
                    progress=False,
                    features=model["features"],
                    fit=model["fit"],
                    **dataset_config(args.dataset, args.seed, work, name),
                )
            )
            summary = result.evaluation
            provenance = result.package.manifest.provenance
            rows[name] = {
                "features": provenance["features"]["choice"]["chosen"],
                "bank": result.details["bank_size"],
                "ROC AUC": summary.metrics.roc_auc or 0.0,
                "F1": summary.metrics.f1 or 0.0,
                "train s": result.timings_s["train_total"],
            }
            print(name, rows[name], file=sys.stderr, flush=True)
            graphs[name] = result.package.graph_path
            if name == V14:
                graphs[name] = work / "v1.4.onnx"
                export_onnx(result.graph, graphs[name], fuse_pads=False)
            if image is None:
                anomalous = [r for r in summary.images if r.sample.is_anomalous]
                image = read_rgb(anomalous[0].sample.image)
        times = time_graphs(graphs, image, args.rounds, args.calls)
    base, standard = (float(np.median(times[name])) for name in (V14, "standard"))
    print(
        f"\n{args.dataset}, seed {args.seed}: {ort.get_device()} ONNX Runtime {ort.__version__}, "
        f"{len(times[V14])} calls a graph\n"
    )
    print(
        "| model | features | bank | ROC AUC | F1 | train s | raw p50 ms | raw p99 ms | p50 / v1.4 | p50 / standard |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, row in rows.items():
        p50 = float(np.median(times[name]))
        print(
            f"| {name} | {row['features']} | {row['bank']} | {row['ROC AUC']:.3f} | {row['F1']:.3f} | "
            f"{row['train s']:.1f} | {p50:.2f} | {np.percentile(times[name], 99):.2f} | "
            f"{p50 / base:.3f} | {p50 / standard:.3f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
