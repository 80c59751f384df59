"""`train --refit-all`: the final model learns from every labelled image of a single dataset.

Without it, the rule is that the file evaluated is the file served: a share of the images is held
out, and the exported package is run on them. A small dataset can ill afford that share, so this
opt-in trains the served model on all images instead. No image is then unseen by it, and the
evaluation comes from the fit's out-of-fold scores (each image scored by the fold models that did
not learn from it), marked `out-of-fold` in the summary, the files, the report and the manifest.

With `--test-dataset` it is refused: a separate test dataset already gives a held-out evaluation
of the served model, which is what a Lookout for Vision user expects from one; folding those
images into training silently would throw that away.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge_agent.dataset import Dataset

if TYPE_CHECKING:
    from edge_agent.model_package import Manifest
    from edge_agent.training.fit import FitResult
    from edge_agent.training.trainer import TrainConfig

WITH_TEST_DATASET = (
    "--refit-all cannot be combined with --test-dataset: a separate test dataset already gives a "
    "held-out evaluation of the model that is served. To train on every image, combine the two "
    "datasets into one and pass it without --test-dataset (the evaluation is then out of fold), "
    "or drop --refit-all"
)


def evaluation_basis(config: TrainConfig, test: Dataset | None) -> str | None:
    """The basis of the evaluation train writes: "out-of-fold", "held-out", or None (none written)."""
    if not config.evaluate:
        return None
    if config.refit_all:
        return "out-of-fold"
    return "held-out" if test is not None else None


def evaluate_refit(model: Manifest, train: Dataset, fitted: FitResult, output_dir: Path | None) -> Any:
    """The out-of-fold EvaluationSummary of a refitted model: the fit's raw scores on the 0..1 scale."""
    from edge_agent.evaluation import evaluate_out_of_fold

    return evaluate_out_of_fold(
        model,
        train,
        fitted.calibration.normalize(fitted.oof_scores),
        output_dir,
        pixel_iou=fitted.oof_pixel_iou,
    )
