"""ONNX export of the AnomalyGraph and the check that ONNX Runtime computes what torch computes."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

from edge_agent.errors import AgentError
from edge_agent.model_package import INPUT_IMAGE, OUTPUT_AREAS, OUTPUT_MASK, OUTPUT_SCORE
from edge_agent.training.graph import AnomalyGraph

logger = logging.getLogger(__name__)

OPSET = 18
SCORE_ATOL = 1e-3  # on the 0..1 score; raw differences are ~1e-5 of the scale
AREA_ATOL = 2e-3
MASK_AGREEMENT = 0.998  # pixels on the exact threshold boundary may flip between runtimes


class ExportError(AgentError):
    """The exported graph does not reproduce the trained model."""


def output_names(graph: AnomalyGraph) -> list[str]:
    return [OUTPUT_SCORE, OUTPUT_MASK, OUTPUT_AREAS] if graph.segmentation else [OUTPUT_SCORE]


def export_onnx(graph: AnomalyGraph, path: Path) -> None:
    """TorchScript-based exporter (dynamo=False): works offline and keeps fixed input shapes."""
    graph.eval()  # the exporter restores the outermost module's mode afterwards
    example = torch.zeros(graph.height, graph.width, 3, dtype=torch.uint8)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            graph,
            (example,),
            str(path),
            input_names=[INPUT_IMAGE],
            output_names=output_names(graph),
            opset_version=OPSET,
            dynamo=False,
        )
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    logger.info("op=export path=%s bytes=%d", path, path.stat().st_size)


def check_parity(graph: AnomalyGraph, path: Path, images: Sequence[np.ndarray]) -> dict[str, float]:
    """Run torch and ONNX Runtime on the same images; raise ExportError when they disagree."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = output_names(graph)
    worst = {"score": 0.0, "areas": 0.0, "mask_agreement": 1.0}
    for image in images:
        with torch.no_grad():
            expected = [t.numpy() for t in graph(torch.from_numpy(np.array(image)))]  # writable copy
        actual = session.run(names, {INPUT_IMAGE: image})
        worst["score"] = max(worst["score"], float(np.abs(expected[0] - actual[0]).max()))
        if graph.segmentation:
            agreement = float((expected[1] == actual[1]).all(axis=-1).mean())
            worst["mask_agreement"] = min(worst["mask_agreement"], agreement)
            worst["areas"] = max(worst["areas"], float(np.abs(expected[2] - actual[2]).max()))
    if worst["score"] > SCORE_ATOL or worst["areas"] > AREA_ATOL or worst["mask_agreement"] < MASK_AGREEMENT:
        raise ExportError(
            f"the ONNX graph {path} disagrees with the trained model: {worst} (allowed score "
            f"{SCORE_ATOL}, areas {AREA_ATOL}, mask agreement {MASK_AGREEMENT}); please report this"
        )
    logger.info("op=parity images=%d %s", len(images), worst)
    return worst
