"""`train`: a Lookout for Vision dataset in, a complete model package (format v1) out.

Steps: import and check the dataset(s), split a single dataset (seeded), extract patch features,
fit memory bank + patch head + thresholds on out-of-fold scores (fit.py), build the one graph
(graph.py), export it to ONNX and check ONNX Runtime against torch, write the manifest. All of it
happens in a temporary folder beside the output that is renamed into place only at the end, so a
failed training leaves no half-written model. Then the held-out images are evaluated through the
exported package (edge_agent.evaluation) into MODEL_DIR/evaluation/. With `refit_all` (refit.py)
nothing is held out: the model learns from the whole single dataset and the evaluation written is
the fit's out-of-fold one.
"""

from __future__ import annotations

import logging
import re
import resource
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from tqdm import tqdm

from edge_agent import __version__
from edge_agent.dataset import (
    Dataset,
    DatasetError,
    load_dataset,
    read_label_indices,
    split_dataset,
    validate,
)
from edge_agent.errors import AgentError
from edge_agent.imaging.overlay import read_rgb
from edge_agent.model_package import DEFAULT_GRAPH_NAME, Manifest, ModelPackage, ModelType, save
from edge_agent.training.backbone import WEIGHTS_SHA256, load_backbone
from edge_agent.training.calibration import DECISION_THRESHOLD
from edge_agent.training.export import check_parity, export_onnx
from edge_agent.training.feature_choice import CANDIDATES, Candidate, choose_features
from edge_agent.training.features import FeatureConfig, PatchFeatures
from edge_agent.training.fit import FitResult, FitSettings, fit
from edge_agent.training.graph import AnomalyGraph
from edge_agent.training.refit import WITH_TEST_DATASET, evaluate_refit, evaluation_basis

logger = logging.getLogger(__name__)

_PROJECT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,254}$")
EVALUATION_DIR = "evaluation"
PARITY_IMAGES = 3


class TrainingError(AgentError):
    """Training cannot run on this input (the message says what to change)."""


@dataclass(frozen=True)
class TrainConfig:
    dataset: str | Path
    output: Path
    test_dataset: str | Path | None = None
    image_root: Path | None = None
    model_type: Literal["auto", "classification", "segmentation"] = "auto"
    seed: int = 0
    project: str = ""  # defaults to the output folder's name
    model_version: int = 1
    test_fraction: float = 0.2  # single-dataset projects: share of each stratum held out
    refit_all: bool = False  # single dataset: train on every image, evaluate out of fold (refit.py)
    overwrite: bool = False
    check_minimums: bool = True  # the guide's minimum image counts
    evaluate: bool = True
    progress: bool = True
    features: Candidate | None = None  # None: chosen on the training images (feature_choice.py)
    fit: FitSettings = field(default_factory=FitSettings)


@dataclass(frozen=True)
class TrainResult:
    package: ModelPackage
    train_dataset: Dataset
    test_dataset: Dataset | None
    evaluation: Any  # EvaluationSummary | None (imported lazily)
    timings_s: dict[str, float]
    peak_rss_mib: float
    details: dict[str, Any]
    graph: AnomalyGraph  # the torch module that was exported (for parity checks)


def project_name(config: TrainConfig) -> str:
    name = config.project or re.sub(r"[^A-Za-z0-9_-]", "-", Path(config.output).resolve().name).strip("-_")
    if not _PROJECT.fullmatch(name or ""):
        raise TrainingError(
            f"project name {name!r} is invalid: use at most 255 characters A-Z a-z 0-9 - _, "
            "starting with a letter or digit (--project NAME)"
        )
    return name


def model_arn(project: str, version: int) -> str:
    return f"arn:aws:lookoutvision:local:000000000000:model/{project}/{version}"


def _resolve_type(config: TrainConfig, train: Dataset) -> ModelType:
    inferred = train.model_type
    if config.model_type == "auto":
        return inferred
    if config.model_type == "segmentation" and inferred != "segmentation":
        raise TrainingError(
            f"--model-type segmentation needs anomalous images with masks and labels, but "
            f"{train.source or 'the training dataset'} has none: label masks or train classification"
        )
    return config.model_type


def _load_datasets(config: TrainConfig) -> tuple[Dataset, Dataset | None, ModelType, dict[str, Any]]:
    dataset = load_dataset(config.dataset, image_root=config.image_root)
    split_info: dict[str, Any]
    if config.test_dataset is not None:
        test = load_dataset(config.test_dataset, image_root=config.image_root)
        if (test.width, test.height) != (dataset.width, dataset.height):
            raise TrainingError(
                f"test dataset {test.source} has {test.width}x{test.height} images but the training "
                f"dataset has {dataset.width}x{dataset.height}: all images must have one size"
            )
        if config.check_minimums:
            validate(dataset, "train", check_files=False)
            validate(test, "test", check_files=False)
        shared = sorted({s.image for s in dataset.samples} & {s.image for s in test.samples})
        if shared:
            raise TrainingError(
                f"{len(shared)} image(s) are in both the training and the test dataset, e.g. {shared[0]}: "
                "a test image the model has learnt from makes the evaluation meaningless; remove them from one"
            )
        train = dataset
        split_info = {"layout": "separate", "test_dataset": str(config.test_dataset)}
    elif config.refit_all:
        if config.check_minimums:
            validate(dataset, "single", check_files=False)
        # The split's test share would be trained on too: the model learns from the whole dataset.
        train, test = dataset, replace(dataset, samples=())
        split_info = {"layout": "single", "test_fraction": None}
    else:
        if config.check_minimums:
            validate(dataset, "single", check_files=False)
        train, test = split_dataset(dataset, config.test_fraction, config.seed)
        split_info = {"layout": "single", "test_fraction": config.test_fraction, "split_seed": config.seed}
    model_type = _resolve_type(config, train)
    if config.test_dataset is not None and model_type == "segmentation" and test.model_type != "segmentation":
        raise TrainingError(
            f"the training dataset is labelled for segmentation but the test dataset {test.source} has "
            "no masks: label both the same way (the guide's rule)"
        )
    if not train.normal:
        raise TrainingError(f"{train.source or 'the training dataset'} has no normal images to learn from")
    return train, (test if test.samples else None), model_type, split_info


def _label_index(sample: Any, dataset: Dataset) -> np.ndarray | None:
    if not sample.is_anomalous:
        return np.zeros((dataset.height, dataset.width), np.uint8)
    if sample.mask is None:
        return None  # anomalous without a mask: used for the image threshold only
    return read_label_indices(sample.mask, dataset.labels)


def train(config: TrainConfig) -> TrainResult:
    """Train, export and (by default) evaluate one model version; see the module docstring."""
    timings: dict[str, float] = {}
    started = time.perf_counter()
    output = Path(config.output)
    project = project_name(config)
    if config.refit_all and config.test_dataset is not None:
        raise TrainingError(WITH_TEST_DATASET)
    if output.exists() and any(output.iterdir()) and not config.overwrite:
        raise TrainingError(
            f"output folder {output} exists and is not empty: choose a new folder or --overwrite"
        )
    train_ds, test_ds, model_type, split_info = _load_datasets(config)
    segmentation = model_type == "segmentation"
    labels = train_ds.labels if segmentation else ()
    timings["load"] = time.perf_counter() - started
    logger.info(
        "op=train project=%s type=%s train_images=%d test_images=%d refit_all=%s",
        project,
        model_type,
        len(train_ds.samples),
        len(test_ds.samples) if test_ds else 0,
        config.refit_all,
    )

    mark = time.perf_counter()
    backbone = load_backbone()
    is_anomalous = np.array([s.is_anomalous for s in train_ds.samples], dtype=bool)

    def extract(features: FeatureConfig) -> torch.Tensor:
        return _extract_features(
            PatchFeatures(backbone, features, train_ds.width, train_ds.height), train_ds, config.progress
        )

    if config.features is None:
        choice = choose_features(extract, is_anomalous, not segmentation, config.fit, config.seed)
        chosen, features, choice_details = choice.config, choice.features, choice.details
        fit_settings, fold_banks = choice.settings, choice.fold_banks
    else:
        chosen, features, fold_banks = config.features.features, extract(config.features.features), None
        fit_settings = config.features.fit_settings(config.fit)
        named = [name for name, candidate in CANDIDATES.items() if candidate == config.features]
        choice_details = {"chosen": named[0] if named else "requested", "reason": "set by the caller"}
    extractor = PatchFeatures(backbone, chosen, train_ds.width, train_ds.height).eval()
    timings["features"] = time.perf_counter() - mark

    mark = time.perf_counter()
    label_index = [_label_index(s, train_ds) for s in train_ds.samples] if segmentation else None
    steps = fit_settings.folds * 2 + 2
    with tqdm(total=steps, desc="fit", unit="step", file=sys.stderr, disable=not config.progress) as bar:
        fitted = fit(
            features,
            is_anomalous,
            label_index,
            len(labels),
            fit_settings,
            config.seed,
            progress=lambda message: (bar.set_postfix_str(message), bar.update(1)),
            fold_banks=fold_banks,
        )
        bar.update(bar.total - bar.n)
    timings["fit"] = time.perf_counter() - mark

    graph = _build_graph(extractor, fitted, train_ds, labels if segmentation else None)
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=output.parent, prefix=f".{output.name}.partial-"))
    try:
        mark = time.perf_counter()
        export_onnx(graph, staging / DEFAULT_GRAPH_NAME)
        timings["export"] = time.perf_counter() - mark
        mark = time.perf_counter()
        parity = check_parity(graph, staging / DEFAULT_GRAPH_NAME, _parity_images(train_ds))
        timings["parity"] = time.perf_counter() - mark
        timings["train_total"] = time.perf_counter() - started
        manifest = Manifest(
            model_type=model_type,
            width=train_ds.width,
            height=train_ds.height,
            threshold=DECISION_THRESHOLD,
            model_arn=model_arn(project, config.model_version),
            labels=tuple(labels),
            model_version=config.model_version,
            score_normalization=fitted.calibration.to_json(),
            provenance=_provenance(
                config,
                train_ds,
                test_ds,
                split_info,
                fitted,
                timings,
                parity,
                extractor.config,
                choice_details,
            ),
        )
        save(staging, manifest)
        _move_into_place(staging, output, config.overwrite)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    package = ModelPackage(directory=output, manifest=manifest)
    package.verify_graph()
    logger.info("op=train project=%s package=%s seconds=%.1f", project, output, timings["train_total"])

    summary = None
    basis = evaluation_basis(config, test_ds)
    mark = time.perf_counter()
    if basis == "out-of-fold":
        summary = evaluate_refit(manifest, train_ds, fitted, output / EVALUATION_DIR)
    elif basis == "held-out" and test_ds is not None:
        from edge_agent.evaluation import evaluate

        summary = evaluate(output, test_ds, output / EVALUATION_DIR, len(train_ds.samples))
    if summary is not None:
        timings["evaluate"] = time.perf_counter() - mark
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return TrainResult(
        package=package,
        train_dataset=train_ds,
        test_dataset=test_ds,
        evaluation=summary,
        timings_s=timings,
        peak_rss_mib=peak_mib,
        details=dict(fitted.details),
        graph=graph,
    )


def _extract_features(extractor: PatchFeatures, dataset: Dataset, progress: bool) -> torch.Tensor:
    """[N, D, h, w] patch features of every training image (decoded one at a time)."""
    feats = []
    extractor.eval()
    with torch.no_grad():
        for sample in tqdm(
            dataset.samples, desc="features", unit="img", file=sys.stderr, disable=not progress
        ):
            try:
                image = read_rgb(sample.image)
            except OSError as exc:  # truncated or corrupt: the header read at import looked fine
                raise DatasetError(
                    f"image {sample.image} cannot be decoded ({exc}): replace the file"
                ) from None
            if image.shape[:2] != (dataset.height, dataset.width):
                raise DatasetError(
                    f"image {sample.image} is {image.shape[1]}x{image.shape[0]} but the dataset's images are "
                    f"{dataset.width}x{dataset.height}: every image must have the same size"
                )
            feats.append(extractor(torch.from_numpy(np.array(image)))[0])  # writable copy
    return torch.stack(feats)


def _build_graph(
    extractor: PatchFeatures, fitted: FitResult, dataset: Dataset, labels: tuple[Any, ...] | None
) -> AnomalyGraph:
    palette = None
    if labels is not None:
        palette = torch.tensor([(0, 0, 0), *[label.rgb() for label in labels]], dtype=torch.uint8)
    return AnomalyGraph(
        extractor,
        fitted.bank,
        fitted.distance_scale,
        fitted.head,
        fitted.calibration.raw_threshold,
        fitted.calibration.scale,
        dataset.height,
        dataset.width,
        palette=palette,
        pixel_threshold=fitted.pixel_threshold,
        image_head=fitted.image_head,
    ).eval()


def _parity_images(dataset: Dataset) -> list[np.ndarray]:
    """A few normal and anomalous training images (both sides of the threshold)."""
    picks = list(dataset.normal[:2]) + list(dataset.anomalous[: PARITY_IMAGES - 1])
    return [read_rgb(sample.image) for sample in picks[: PARITY_IMAGES + 1]]


def _provenance(
    config: TrainConfig,
    train_ds: Dataset,
    test_ds: Dataset | None,
    split_info: dict[str, Any],
    fitted: FitResult,
    timings: dict[str, float],
    parity: dict[str, float],
    features: FeatureConfig,
    choice: dict[str, Any],
) -> dict[str, Any]:
    return {
        "dataset": str(config.dataset),
        **split_info,
        "training_images": len(train_ds.samples),
        "training_normal": len(train_ds.normal),
        "training_anomalous": len(train_ds.anomalous),
        "test_images": len(test_ds.samples) if test_ds else 0,
        "refit_all": config.refit_all,
        "evaluation_basis": evaluation_basis(config, test_ds),
        "seed": config.seed,
        "algorithm": _algorithm(fitted),
        "backbone": {"name": "efficientnet-lite0", "weights_sha256": WEIGHTS_SHA256},
        "features": {
            "long_side": features.long_side,
            "block_ids": list(features.block_ids),
            "aggregate": features.aggregate,
            "choice": choice,
        },
        "fit": fitted.details,
        "pixel_threshold": fitted.pixel_threshold if fitted.oof_pixel_iou is not None else None,
        "timings_s": {key: round(value, 3) for key, value in timings.items()},
        "onnx_parity": parity,
        "edge_agent_version": __version__,
        "torch_version": torch.__version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _algorithm(fitted: FitResult) -> str:
    if fitted.image_head is not None:
        return "patchcore+image-head"
    if fitted.head is None:
        return "patchcore"
    image_head = fitted.details.get("image_head")
    return "patchcore+mil-head" if isinstance(image_head, dict) else "patchcore+patch-head"


def _move_into_place(staging: Path, output: Path, overwrite: bool) -> None:
    """Rename the finished package onto the output path (the old one is removed only afterwards)."""
    if output.exists():
        if any(output.iterdir()) and not overwrite:
            raise TrainingError(f"output folder {output} appeared while training: not replacing it")
        old = output.with_name(f".{output.name}.old-{int(time.time())}")
        output.rename(old)
        staging.rename(output)
        shutil.rmtree(old, ignore_errors=True)
    else:
        staging.rename(output)
