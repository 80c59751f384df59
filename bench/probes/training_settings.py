"""Probe: cookies (the default split), per seed 0 and 1, with other feature resolutions or patch
head settings.

Each argument is `side=N` (the working image's long side; 320 is the default) or
`head=NORMALS:STEPS` (the normal patches the head trains on and its Adam steps). Prints the hold-out
ROC AUC, F1, IoU of `cracked` and the training time of each.
"""

from __future__ import annotations

import dataclasses
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from model_speed import COOKIES

from edge_agent.training import TrainConfig, train
from edge_agent.training.feature_choice import Candidate
from edge_agent.training.features import FeatureConfig
from edge_agent.training.fit import FitSettings


def config(spec: str, seed: int, output: Path) -> TrainConfig:
    kind, _, value = spec.partition("=")
    base = TrainConfig(
        dataset=COOKIES, output=output, seed=seed, project="cookies", progress=False, overwrite=True
    )
    if kind == "side":
        return dataclasses.replace(base, features=Candidate(FeatureConfig(long_side=int(value))))
    if kind == "head":
        normals, steps = (int(v) for v in value.split(":"))
        fit = FitSettings(max_normal_patches=normals, head_steps=steps)
        return dataclasses.replace(base, fit=fit)
    raise SystemExit(f"unknown setting {spec!r}: use side=N or head=NORMALS:STEPS")


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="training-settings-") as tmp:
        for number, spec in enumerate(sys.argv[1:] or ["side=320"]):
            for seed in (0, 1):
                result = train(config(spec, seed, Path(tmp) / f"{number}-{seed}"))
                summary = result.evaluation
                ious = [label.aiou for label in summary.labels if label.aiou is not None]
                print(
                    f"{spec} seed {seed}: ROC AUC {summary.metrics.roc_auc:.3f} F1 {summary.metrics.f1:.3f} "
                    f"IoU {statistics.fmean(ious):.3f} train {result.timings_s['train_total']:.1f} s",
                    flush=True,
                )


if __name__ == "__main__":
    main()
