"""Build small but real model packages (format v1) with onnx.helper.

- `bright_blob_package`: flags bright pixels (gray > 200). Score = min(1, 50 * bright fraction),
  threshold 0.5, so an image is anomalous when at least 1% of it is bright. The segmentation
  variant paints bright pixels in the `bright` colour and very dark ones (gray < 30) in `dark`.
- `heavy_package`: resizes inside the graph and runs a conv stack, for latency benchmarks and
  overload tests (cost grows with `layers` and `channels`).
Every graph follows the package contract: uint8 [H, W, 3] in, everything else inside, and the
rules TensorRT 8.5 and 10.x parse (opset 17, uint8 only at the input and output next to a Cast;
edge_agent/packager/trt_rules.py), so the GPU backends can be tested with them too.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edge_agent.model_package import (
    INPUT_IMAGE,
    OUTPUT_AREAS,
    OUTPUT_MASK,
    OUTPUT_SCORE,
    AnomalyLabel,
    Manifest,
    ModelPackage,
    save,
)

OPSET = 17  # TensorRT 8.5's newest; see edge_agent/training/export.py
BRIGHT = AnomalyLabel("bright", "#F5A623")
DARK = AnomalyLabel("dark", "#4A90E2")


def _const(name: str, array: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(array), name=name)


def _finish(nodes: list, inits: list, outputs: list, width: int, height: int, name: str) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info(INPUT_IMAGE, TensorProto.UINT8, [height, width, 3])],
        outputs,
        initializer=inits,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="edge_agent.testing"
    )
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


def bright_blob_graph(width: int, height: int, segmentation: bool) -> onnx.ModelProto:
    n = helper.make_node
    nodes = [
        n("Cast", [INPUT_IMAGE], ["x_f"], to=TensorProto.FLOAT),
        n("ReduceMean", ["x_f"], ["gray"], axes=[2], keepdims=0),
        n("Greater", ["gray", "hi"], ["is_bright"]),
        n("Less", ["gray", "lo"], ["is_dark"]),
        n("Cast", ["is_bright"], ["bright_f"], to=TensorProto.FLOAT),
        n("Cast", ["is_dark"], ["dark_f"], to=TensorProto.FLOAT),
    ]
    inits = [
        _const("axis2", np.array([2], np.int64)),
        _const("hi", np.array(200.0, np.float32)),
        _const("lo", np.array(30.0, np.float32)),
        _const("gain", np.array(50.0, np.float32)),
        _const("one", np.array(1.0, np.float32)),
        _const("shape1", np.array([1], np.int64)),
    ]
    if segmentation:
        # label = bright * 1 + dark * 2 ; anomalous fraction = 1 - background area
        nodes += [
            n("Mul", ["dark_f", "two"], ["dark2"]),
            n("Add", ["bright_f", "dark2"], ["label_f"]),
            n("Cast", ["label_f"], ["label"], to=TensorProto.INT32),
            n("Gather", ["palette", "label"], ["mask_f"], axis=0),
            n("Cast", ["mask_f"], [OUTPUT_MASK], to=TensorProto.UINT8),
            n("Unsqueeze", ["label", "axis2"], ["label3"]),
            n("Equal", ["label3", "classes"], ["onehot_b"]),
            n("Cast", ["onehot_b"], ["onehot"], to=TensorProto.FLOAT),
            n("ReduceMean", ["onehot"], [OUTPUT_AREAS], axes=[0, 1], keepdims=0),
            n("Sub", ["one", "bg_area"], ["fraction"]),
            n("Gather", [OUTPUT_AREAS, "zero"], ["bg_area"], axis=0),
        ]
        palette = np.array([[0, 0, 0], BRIGHT.rgb(), DARK.rgb()], np.float32)  # cast to uint8 at the end
        inits += [
            _const("two", np.array(2.0, np.float32)),
            _const("palette", palette),
            _const("classes", np.array([0, 1, 2], np.int32)),
            _const("zero", np.array(0, np.int64)),
        ]
    else:
        nodes.append(n("ReduceMean", ["bright_f"], ["fraction"], keepdims=0))
    nodes += [
        n("Mul", ["fraction", "gain"], ["raw"]),
        n("Min", ["raw", "one"], ["clipped"]),
        n("Reshape", ["clipped", "shape1"], [OUTPUT_SCORE]),
    ]
    outputs = [helper.make_tensor_value_info(OUTPUT_SCORE, TensorProto.FLOAT, [1])]
    if segmentation:
        outputs += [
            helper.make_tensor_value_info(OUTPUT_MASK, TensorProto.UINT8, [height, width, 3]),
            helper.make_tensor_value_info(OUTPUT_AREAS, TensorProto.FLOAT, [3]),
        ]
    # Topological order: bg_area must come before its use.
    if segmentation:
        nodes = _toposort(nodes, {INPUT_IMAGE} | {i.name for i in inits})
    return _finish(nodes, inits, outputs, width, height, "bright_blob")


def heavy_graph(
    width: int, height: int, side: int = 224, layers: int = 6, channels: int = 32
) -> onnx.ModelProto:
    """Resize to side x side inside the graph, then a stack of 3x3 convolutions."""
    n = helper.make_node
    rng = np.random.default_rng(0)
    nodes = [
        n("Cast", [INPUT_IMAGE], ["x_f"], to=TensorProto.FLOAT),
        n("Transpose", ["x_f"], ["chw"], perm=[2, 0, 1]),
        n("Unsqueeze", ["chw", "axis0"], ["nchw"]),
        n("Resize", ["nchw", "", "", "sizes"], ["small"], mode="linear"),
        n("Mul", ["small", "inv255"], ["h0"]),
    ]
    inits = [
        _const("axis0", np.array([0], np.int64)),
        _const("sizes", np.array([1, 3, side, side], np.int64)),
        _const("inv255", np.array(1 / 255, np.float32)),
        _const("shape1", np.array([1], np.int64)),
    ]
    c_in = 3
    for i in range(layers):
        w = (rng.standard_normal((channels, c_in, 3, 3)) * np.sqrt(2 / (9 * c_in))).astype(np.float32)
        inits += [_const(f"w{i}", w), _const(f"b{i}", np.zeros(channels, np.float32))]
        nodes += [
            n("Conv", [f"h{i}", f"w{i}", f"b{i}"], [f"c{i}"], pads=[1, 1, 1, 1]),
            n("Relu", [f"c{i}"], [f"h{i + 1}"]),
        ]
        c_in = channels
    nodes += [
        n("ReduceMean", [f"h{layers}"], ["m"], keepdims=0),
        n("Sigmoid", ["m"], ["s"]),
        n("Reshape", ["s", "shape1"], [OUTPUT_SCORE]),
    ]
    outputs = [helper.make_tensor_value_info(OUTPUT_SCORE, TensorProto.FLOAT, [1])]
    return _finish(nodes, inits, outputs, width, height, "heavy")


def _toposort(nodes: list, available: set[str]) -> list:
    ordered, pending, have = [], list(nodes), set(available)
    while pending:
        for node in pending:
            if all(not name or name in have for name in node.input):
                ordered.append(node)
                have.update(node.output)
                pending.remove(node)
                break
        else:
            raise ValueError("graph has a cycle or a missing input")
    return ordered


def write_package(directory: Path, model: onnx.ModelProto, manifest: Manifest) -> ModelPackage:
    directory.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(directory / manifest.graph))
    return save(directory, manifest)


def bright_blob_package(
    directory: Path, width: int = 128, height: int = 96, segmentation: bool = False, model_arn: str = ""
) -> ModelPackage:
    labels = (BRIGHT, DARK) if segmentation else ()
    manifest = Manifest(
        model_type="segmentation" if segmentation else "classification",
        width=width,
        height=height,
        threshold=0.5,
        model_arn=model_arn
        or f"arn:aws:lookoutvision:local:000000000000:model/bright-blob/{int(segmentation) + 1}",
        labels=labels,
        score_normalization={"method": "linear", "gain": 50.0, "clip": [0, 1]},
        provenance={"builder": "edge_agent.testing.onnx_models.bright_blob_package"},
    )
    return write_package(directory, bright_blob_graph(width, height, segmentation), manifest)


def heavy_package(
    directory: Path, width: int, height: int, side: int = 224, layers: int = 6, channels: int = 32
) -> ModelPackage:
    manifest = Manifest(
        model_type="classification",
        width=width,
        height=height,
        threshold=0.5,
        model_arn="arn:aws:lookoutvision:local:000000000000:model/heavy/1",
        score_normalization={"method": "sigmoid"},
        provenance={
            "builder": "edge_agent.testing.onnx_models.heavy_package",
            "side": side,
            "layers": layers,
        },
    )
    return write_package(directory, heavy_graph(width, height, side, layers, channels), manifest)
