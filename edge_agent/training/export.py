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
from onnx import TensorProto, helper, numpy_helper, shape_inference
from onnx.reference import ReferenceEvaluator

from edge_agent.errors import AgentError
from edge_agent.model_package import INPUT_IMAGE, OUTPUT_AREAS, OUTPUT_MASK, OUTPUT_SCORE
from edge_agent.training.graph import AnomalyGraph
from edge_agent.training.onnx_passes import fuse_pads_into_convs

logger = logging.getLogger(__name__)

# Opset 17: the newest TensorRT 8.5 (JetPack 5.1, Jetson Xavier's last) parses; ONNX Runtime 1.19 (the
# newest for Python 3.8) reads up to 21 and TensorRT 10 reads 9..20+. Nothing we export needs 18: its
# changes (Reduce* axes as an input, Resize antialias, Split num_outputs) give the same results.
OPSET = 17
SCORE_ATOL = 1e-3  # on the 0..1 score; raw differences are ~1e-5 of the scale
AREA_ATOL = 2e-3
MASK_AGREEMENT = 0.998  # pixels on the exact threshold boundary may flip between runtimes


class ExportError(AgentError):
    """The exported graph does not reproduce the trained model."""


def output_names(graph: AnomalyGraph) -> list[str]:
    return [OUTPUT_SCORE, OUTPUT_MASK, OUTPUT_AREAS] if graph.segmentation else [OUTPUT_SCORE]


def export_onnx(graph: AnomalyGraph, path: Path, fuse_pads: bool = True) -> None:
    """TorchScript-based exporter (dynamo=False): works offline and keeps fixed input shapes.
    `fuse_pads=False` keeps the Pad nodes (bench/model_speed.py measures what folding them saves)."""
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
    model = fold_shape_arithmetic(onnx.load(str(path)))
    fused = fuse_pads_into_convs(model) if fuse_pads else 0
    fix_output_shapes(model, graph)
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    logger.info("op=export path=%s bytes=%d pads_fused=%d", path, path.stat().st_size, fused)


_INTEGER_TYPES = {TensorProto.INT64, TensorProto.INT32, TensorProto.BOOL}


def fold_shape_arithmetic(model: onnx.ModelProto) -> onnx.ModelProto:
    """Replace the integer computations on known shapes with their values.

    The exporter writes padding, resizing and reshaping as run-time arithmetic on Shape outputs
    (int64 ConstantOfShape, Concat, Slice, Reshape...). Our input size is fixed, so these are
    constants; TensorRT 8.5 parses the folded graph where it refuses parts of the unfolded one.
    Only nodes whose outputs are integers are folded: no float value changes, so every output
    stays the same to the bit.
    """
    inferred = shape_inference.infer_shapes(model, strict_mode=True, data_prop=True)
    infos = {v.name: v for v in [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]}
    known = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}
    keep, folded = [], {}
    for node in model.graph.node:
        value = _fold(node, known, infos, model.opset_import)
        if value is None:
            keep.append(node)
            continue
        for name, array in zip(node.output, value, strict=True):
            known[name] = folded[name] = np.asarray(array)
    outputs = {o.name for o in model.graph.output}
    used = {name for node in keep for name in node.input} | outputs
    del model.graph.node[:]
    model.graph.node.extend(keep)
    for name, array in folded.items():
        if name in used:
            model.graph.initializer.append(numpy_helper.from_array(array, name=name))
    initializers = [init for init in model.graph.initializer if init.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(initializers)
    del model.graph.value_info[:]
    return shape_inference.infer_shapes(model, strict_mode=True)


def _fold(node: onnx.NodeProto, known: dict, infos: dict, opsets) -> list | None:
    if node.op_type == "Constant":
        out = infos.get(node.output[0])
        if out is None or out.type.tensor_type.elem_type not in _INTEGER_TYPES:
            return None
        tensors = [a.t for a in node.attribute if a.name == "value"]
        return [numpy_helper.to_array(tensors[0])] if tensors else None  # value_int(s): left as they are
    if node.op_type == "Shape":
        source = infos.get(node.input[0])
        dims = source.type.tensor_type.shape.dim if source is not None else []
        if not dims or any(not d.HasField("dim_value") for d in dims):
            return None
        attrs = {a.name: a.i for a in node.attribute}
        shape = [d.dim_value for d in dims]
        return [np.array(shape[attrs.get("start", 0) : attrs.get("end", len(shape))], np.int64)]
    inputs = [name for name in node.input if name]
    outputs = [infos.get(name) for name in node.output]
    if not inputs or any(name not in known for name in inputs):
        return None
    if any(o is None or o.type.tensor_type.elem_type not in _INTEGER_TYPES for o in outputs):
        return None
    values = {name: known[name] for name in inputs}
    single = helper.make_model(
        helper.make_graph(
            [node],
            "fold",
            [
                helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
                for n, v in values.items()
            ],
            [helper.make_empty_tensor_value_info(n) for n in node.output],
        ),
        opset_imports=list(opsets),
    )
    return list(ReferenceEvaluator(single).run(None, values))


def output_shapes(graph: AnomalyGraph) -> dict[str, list[int]]:
    """The shapes the package contract fixes for each output (docs/model-format.md)."""
    shapes = {OUTPUT_SCORE: [1]}
    if graph.segmentation:
        shapes[OUTPUT_MASK] = [graph.height, graph.width, 3]
        shapes[OUTPUT_AREAS] = [int(graph.palette.shape[0])]
    return shapes


def fix_output_shapes(model: onnx.ModelProto, graph: AnomalyGraph) -> None:
    """Write the outputs' static shapes into the graph. The exporter names some dimensions
    symbolically (e.g. the score's), which runtimes report as -1 or None; a runtime that sizes its
    buffers from the graph (TensorRT) then needs the real sizes, and these are them."""
    shapes = output_shapes(graph)
    for output in model.graph.output:
        dims = output.type.tensor_type.shape.dim
        want = shapes[output.name]
        if len(dims) != len(want):
            raise ExportError(f"exported output {output.name} has rank {len(dims)}, expected {len(want)}")
        for dim, size in zip(dims, want, strict=True):
            if dim.HasField("dim_value") and dim.dim_value != size:
                raise ExportError(f"exported output {output.name} has shape {dims}, expected {want}")
            dim.Clear()
            dim.dim_value = size


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
