"""`evaluate`: run a model package over a labelled dataset and score it.

Every image goes through `Predictor.predict`, the code the agent serves with, so the numbers
describe the exported package exactly. Masks are compared by colour: a dataset label's true
pixels are those painted in its colour in the ground-truth mask, its predicted pixels those painted
in the model's colour for the same label (matched by colour, else by name).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from edge_agent.dataset.images import read_mask
from edge_agent.dataset.types import Dataset, Sample
from edge_agent.errors import AgentError, InvalidInputError
from edge_agent.evaluation.metrics import Confusion, LabelPixels, average_precision, roc_auc
from edge_agent.evaluation.summary import EvaluationSummary, ImageMetrics, ImageResult, LabelMetrics
from edge_agent.imaging.overlay import read_rgb
from edge_agent.inference import Detection, Predictor
from edge_agent.model_package import AnomalyLabel, Manifest, hex_to_rgb

log = logging.getLogger(__name__)

MASK_DIR = "masks"


def pack(rgb: np.ndarray) -> np.ndarray:
    """uint8 [H, W, 3] -> uint32 [H, W] with 0xRRGGBB per pixel, to compare colours in one op."""
    return (
        rgb[..., 0].astype(np.uint32) << 16
        | rgb[..., 1].astype(np.uint32) << 8
        | rgb[..., 2].astype(np.uint32)
    )


def packed_color(hex_color: str) -> int:
    r, g, b = hex_to_rgb(hex_color)
    return r << 16 | g << 8 | b


def model_colors(dataset_labels: tuple[AnomalyLabel, ...], model: Manifest) -> dict[str, int | None]:
    """Dataset label name -> the packed colour the model paints it in (None if the model lacks it)."""
    by_color = {label.hex_color: label for label in model.labels}
    by_name = {label.name: label for label in model.labels}
    mapping: dict[str, int | None] = {}
    for label in dataset_labels:
        match = by_color.get(label.hex_color) or by_name.get(label.name)
        if match is None:
            log.warning("op=evaluate label=%s color=%s model has no such label", label.name, label.hex_color)
        elif match.name != label.name or match.hex_color != label.hex_color:
            log.warning(
                "op=evaluate dataset_label=%s/%s model_label=%s/%s compared as one label",
                label.name,
                label.hex_color,
                match.name,
                match.hex_color,
            )
        mapping[label.name] = None if match is None else packed_color(match.hex_color)
    return mapping


def evaluate(
    package_dir: Path,
    dataset: Dataset,
    output_dir: Path | None = None,
    number_of_training_images: int | None = None,
    backend: str = "cpu",
) -> EvaluationSummary:
    """Score every image of `dataset`; with output_dir, also write the guide's files and report.html.

    number_of_training_images defaults to the package manifest's provenance["training_images"].
    """
    predictor = Predictor.open(package_dir, backend=backend)
    try:
        return _evaluate(predictor, dataset, output_dir, number_of_training_images)
    finally:
        predictor.close()


def _evaluate(
    predictor: Predictor, dataset: Dataset, output_dir: Path | None, training_images: int | None
) -> EvaluationSummary:
    from edge_agent.evaluation import report

    model = predictor.manifest
    if (dataset.width, dataset.height) != (model.width, model.height):
        raise InvalidInputError(
            f"dataset {dataset.source or ''} has {dataset.width}x{dataset.height} images but the model "
            f"takes {model.width}x{model.height}: evaluate on images of the size the model was trained on"
        )
    if output_dir is not None:
        output_dir.mkdir(parents=True, exist_ok=True)
    score_labels = model.is_segmentation and dataset.model_type == "segmentation"
    colors = model_colors(dataset.labels, model) if score_labels else {}
    pixels = {label.name: LabelPixels() for label in dataset.labels} if score_labels else {}
    results: list[ImageResult] = []
    skipped: list[tuple[str, str]] = []
    for index, sample in enumerate(dataset.samples):
        ref = sample.source_ref or str(sample.image)
        try:
            image = read_rgb(sample.image)
            detection = predictor.predict(image)
        except (OSError, ValueError, AgentError) as exc:
            log.warning("op=evaluate image=%s skipped reason=%s", ref, exc)
            skipped.append((ref, str(exc)))
            continue
        truth_mask = _truth_mask(sample, dataset, image.shape) if score_labels else None
        label_iou: dict[str, float] = {}
        if truth_mask is not None and detection.mask is not None:
            truth_packed, predicted_packed = pack(truth_mask), pack(np.asarray(detection.mask))
            for label in dataset.labels:
                color = colors[label.name]
                predicted = (
                    predicted_packed == color if color is not None else np.zeros(truth_packed.shape, bool)
                )
                iou = pixels[label.name].add(truth_packed == packed_color(label.hex_color), predicted)
                if iou is not None:
                    label_iou[label.name] = iou
        mask_path = thumbnail = None
        if output_dir is not None:
            stem = f"{index:05d}-{sample.image.stem}"
            mask_path = _write_mask(detection, output_dir, stem)
            thumbnail = report.write_thumbnail(image, truth_mask, detection.mask, output_dir, stem)
        results.append(
            ImageResult(
                sample=sample,
                detection=replace(detection, mask=None),
                predicted_labels=tuple(a.name for a in detection.anomalies[1:]),
                label_iou=label_iou,
                predicted_mask=mask_path,
                thumbnail=thumbnail,
            )
        )
    summary = EvaluationSummary(
        model_arn=model.model_arn,
        model_type=model.model_type,
        threshold=float(np.float32(model.threshold)),
        dataset_source=dataset.source,
        images=tuple(results),
        metrics=image_metrics(results),
        labels=tuple(
            LabelMetrics(
                name=label.name,
                hex_color=label.hex_color,
                test_images=pixels[label.name].images,
                precision=pixels[label.name].precision,
                recall=pixels[label.name].recall,
                f1=pixels[label.name].f1,
                aiou=pixels[label.name].aiou,
            )
            for label in dataset.labels
            if label.name in pixels
        ),
        skipped=tuple(skipped),
        number_of_training_images=_training_images(model, training_images),
        end_timestamp=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f"),
    )
    log.info(
        "op=evaluate model=%s images=%d skipped=%d f1=%s",
        model.model_arn,
        len(results),
        len(skipped),
        summary.metrics.f1,
    )
    if output_dir is None:
        return summary
    return write_outputs(summary, model, output_dir)


def write_outputs(summary: EvaluationSummary, model: Manifest, output_dir: Path) -> EvaluationSummary:
    """The guide's two files and report.html; the summary comes back with their paths."""
    from edge_agent.evaluation import report
    from edge_agent.evaluation.files import write_files

    result_path, manifest_path = write_files(summary, model, output_dir)
    summary = replace(summary, result_path=result_path, manifest_path=manifest_path)
    return replace(summary, report_path=report.write_report(summary, output_dir))


def image_metrics(results: list[ImageResult]) -> ImageMetrics:
    truth = np.array([r.sample.is_anomalous for r in results], dtype=bool)
    predicted = np.array([r.detection.is_anomalous for r in results], dtype=bool)
    scores = np.array([r.detection.anomaly_score for r in results], dtype=np.float64)
    confusion = Confusion.of(truth, predicted)
    return ImageMetrics(
        confusion=confusion,
        precision=confusion.precision,
        recall=confusion.recall,
        f1=confusion.f1,
        roc_auc=roc_auc(truth, scores),
        average_precision=average_precision(truth, scores),
    )


def _truth_mask(sample: Sample, dataset: Dataset, shape: tuple[int, ...]) -> np.ndarray:
    """The ground-truth mask with everything but label colours set to black (normal images: all black)."""
    if sample.mask is None:
        return np.zeros(shape, dtype=np.uint8)
    mask = read_mask(sample.mask)
    keep = np.isin(pack(mask), [packed_color(label.hex_color) for label in dataset.labels])
    return np.where(keep[..., None], mask, 0).astype(np.uint8)


def _write_mask(detection: Detection, output_dir: Path, stem: str) -> Path | None:
    if detection.mask is None:
        return None
    from PIL import Image

    path = output_dir / MASK_DIR / f"{stem}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    # Level 1: masks are flat colour, so it compresses nearly as well and several times faster.
    Image.fromarray(np.ascontiguousarray(detection.mask)).save(path, compress_level=1)
    return path


def _training_images(model: Manifest, given: int | None) -> int:
    if given is not None:
        return given
    value = model.provenance.get("training_images", 0)
    return int(value) if isinstance(value, (int, float)) else 0
