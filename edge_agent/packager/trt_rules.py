"""Would TensorRT's ONNX parser take this graph? The rules that can be checked without a GPU.

No GPU is needed to know most of what makes onnx-tensorrt refuse a graph: an opset it does not
read, an operator it does not import, a data type an operator does not take, UINT8 anywhere but
the network's input or output, INT64 where TensorRT 8.5 (no INT64 type) cannot cast it down, and
dimensions only known at run time without an optimisation profile. The tables come from
onnx-tensorrt's docs/operators.md for TensorRT 8.5 (release/8.5-GA: "supports operators up to
Opset 17") and 10.x ("opset 9 to opset 24" in 10.15): an operator and type is allowed here only
when both list it, because one package serves Jetson (JetPack 5.1, TensorRT 8.5) and x86 (10.x).

What this cannot see: kernel availability for a given GPU, workspace limits, numerical drift.
Those are the device's build and the FP16 check (edge_agent/runtime/tensorrt.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper, shape_inference

MIN_OPSET = 9  # TensorRT 10's lower bound
MAX_OPSET = 17  # TensorRT 8.5's upper bound

F32, F16, I32, BOOL = "FLOAT", "FLOAT16", "INT32", "BOOL"
_FLOATS = frozenset({F32, F16})
_NUMERIC = frozenset({F32, F16, I32})
_ANY = frozenset({F32, F16, I32, BOOL})

# Operator -> data types both TensorRT 8.5 and 10.x list for it (INT64 counts as INT32: the 8.5
# parser casts INT64 down to INT32, clamping to +-INT_MAX, and 10.x takes INT64 as it is).
SUPPORTED_TYPES: dict[str, frozenset[str]] = {
    **dict.fromkeys(["And", "Not", "Or", "Xor"], frozenset({BOOL})),
    **dict.fromkeys(
        [
            "ArgMax",
            "ArgMin",
            "AveragePool",
            "BatchNormalization",
            "Ceil",
            "Celu",
            "Clip",
            "Conv",
            "ConvTranspose",
            "Cos",
            "CumSum",
            "Dropout",
            "Einsum",
            "Elu",
            "Erf",
            "Exp",
            "Floor",
            "Gemm",
            "GlobalAveragePool",
            "GlobalMaxPool",
            "HardSigmoid",
            "HardSwish",
            "InstanceNormalization",
            "LRN",
            "LeakyRelu",
            "Log",
            "LogSoftmax",
            "MatMul",
            "MaxPool",
            "PRelu",
            "Pow",
            "Reciprocal",
            "ReduceL1",
            "ReduceL2",
            "ReduceLogSum",
            "ReduceLogSumExp",
            "ReduceMax",
            "ReduceMean",
            "ReduceMin",
            "ReduceProd",
            "ReduceSum",
            "ReduceSumSquare",
            "Relu",
            "Resize",
            "Round",
            "Selu",
            "Sigmoid",
            "Sin",
            "Softmax",
            "Softplus",
            "Softsign",
            "Sqrt",
            "Tan",
            "Tanh",
            "TopK",
        ],
        _FLOATS,
    ),
    **dict.fromkeys(
        [
            "Abs",
            "Add",
            "DepthToSpace",
            "Div",
            "Equal",
            "Greater",
            "GreaterOrEqual",
            "IsNaN",
            "Less",
            "LessOrEqual",
            "Max",
            "Mean",
            "Min",
            "Mod",
            "Mul",
            "Neg",
            "Pad",
            "Range",
            "Sign",
            "SpaceToDepth",
            "Sub",
            "Sum",
        ],
        _NUMERIC,
    ),
    **dict.fromkeys(
        [
            "Cast",
            "Concat",
            "Constant",
            "Expand",
            "Flatten",
            "Gather",
            "GatherElements",
            "GatherND",
            "Identity",
            "OneHot",
            "Reshape",
            "Slice",
            "Split",
            "Squeeze",
            "Tile",
            "Transpose",
            "Unsqueeze",
            "Where",
        ],
        _ANY,
    ),
    "ConstantOfShape": frozenset({F32}),  # 8.5 lists FP32 only
    "Shape": _ANY,
    "Size": _ANY,
}
# Which inputs carry the typed data (the others are indices, shapes, axes: any integer type).
_DATA_INPUTS: dict[str, tuple[int, ...]] = {
    **dict.fromkeys(
        [
            "Gather",
            "GatherElements",
            "GatherND",
            "Reshape",
            "Slice",
            "Pad",
            "Resize",
            "Squeeze",
            "Unsqueeze",
            "Expand",
            "Tile",
            "Split",
            "TopK",
            "CumSum",
            "Clip",
        ],
        (0,),
    ),
    **{op: (0,) for op in SUPPORTED_TYPES if op.startswith("Reduce")},
    "Where": (1, 2),
    "OneHot": (2,),
    "Shape": (),
    "Size": (),
    "ConstantOfShape": (),
}
_OUTPUT_TYPED = {"Constant", "ConstantOfShape", "Cast"}
_RESIZE_MODES = {"nearest", "linear"}
_RESIZE_TRANSFORMS = {
    "half_pixel",
    "pytorch_half_pixel",
    "tf_half_pixel_for_nn",
    "asymmetric",
    "align_corners",
}
_INT32 = np.iinfo(np.int32)


@dataclass(frozen=True)
class Problem:
    node: str  # node name (or op type and index), or "graph"
    rule: str
    detail: str

    def __str__(self) -> str:
        return f"{self.node}: {self.rule}: {self.detail}"


def check_model(model: onnx.ModelProto) -> list[Problem]:
    """Every rule broken by `model`; empty when TensorRT 8.5 and 10.x should both parse it."""
    problems: list[Problem] = _check_opset(model)
    try:
        onnx.checker.check_model(model, full_check=True)
        inferred = shape_inference.infer_shapes(model, check_type=True, strict_mode=True, data_prop=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        return [*problems, Problem("graph", "onnx checker", first)]
    graph = inferred.graph
    types = _value_types(graph)
    consumers: dict[str, list[onnx.NodeProto]] = {}
    producer: dict[str, onnx.NodeProto] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
        for name in node.output:
            producer[name] = node
    problems += _check_io(graph, types, consumers, producer)
    constants = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    for index, node in enumerate(graph.node):
        label = node.name or f"{node.op_type}#{index}"
        problems += _check_node(label, node, types, constants)
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    constants[node.output[0]] = numpy_helper.to_array(attr.t)
    problems += _check_int64_constants(graph, constants, consumers)
    return problems


def _check_opset(model: onnx.ModelProto) -> list[Problem]:
    problems = []
    # ONNX Runtime's optimizer saves an import for each of its domains, used or not; the parser only
    # needs plugins for operators of a domain it does not know.
    used = {node.domain for node in model.graph.node} | {"", "ai.onnx"}
    for opset in model.opset_import:
        if opset.domain not in used:
            continue
        if opset.domain in ("", "ai.onnx"):
            if not MIN_OPSET <= opset.version <= MAX_OPSET:
                problems.append(
                    Problem(
                        "graph",
                        "opset",
                        f"opset {opset.version}; TensorRT 8.5 reads up to {MAX_OPSET}, 10.x from {MIN_OPSET}",
                    )
                )
        else:
            problems.append(Problem("graph", "opset", f"custom domain {opset.domain!r} needs a plugin"))
    return problems


def _value_types(graph: onnx.GraphProto) -> dict[str, str]:
    types: dict[str, str] = {}
    for info in [*graph.input, *graph.value_info, *graph.output]:
        types[info.name] = TensorProto.DataType.Name(info.type.tensor_type.elem_type)
    for init in graph.initializer:
        types[init.name] = TensorProto.DataType.Name(init.data_type)
    for node in graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    types[node.output[0]] = TensorProto.DataType.Name(attr.t.data_type)
    return types


def _trt_type(onnx_type: str) -> str:
    return I32 if onnx_type == "INT64" else onnx_type


def _check_io(
    graph: onnx.GraphProto,
    types: dict[str, str],
    consumers: dict[str, list[onnx.NodeProto]],
    producer: dict[str, onnx.NodeProto],
) -> list[Problem]:
    problems = []
    boundary = {i.name for i in graph.input} | {o.name for o in graph.output}
    for info in [*graph.input, *graph.output]:
        dims = info.type.tensor_type.shape.dim
        if any(not d.HasField("dim_value") or d.dim_value <= 0 for d in dims):
            problems.append(
                Problem(
                    info.name,
                    "static shapes",
                    f"{[d.dim_param or d.dim_value for d in dims]} has run-time dimensions and no "
                    "optimisation profile is set",
                )
            )
        if types.get(info.name) == "INT64":
            problems.append(
                Problem(info.name, "int64", "TensorRT 8.5 has no INT64 network inputs or outputs")
            )
    for info in graph.input:
        if types.get(info.name) == "UINT8":
            for node in consumers.get(info.name, []):
                if node.op_type != "Cast" or _cast_to(node) not in _FLOATS:
                    problems.append(
                        Problem(
                            info.name,
                            "uint8",
                            f"a UINT8 input may only feed a Cast to float, not {node.op_type}",
                        )
                    )
    for info in graph.output:
        if types.get(info.name) == "UINT8":
            node = producer.get(info.name)
            source = types.get(node.input[0], "") if node is not None and node.input else ""
            if node is None or node.op_type != "Cast" or source not in _FLOATS:
                problems.append(
                    Problem(
                        info.name, "uint8", "a UINT8 output must come straight from a Cast of a float tensor"
                    )
                )
    for name, dtype in types.items():
        if dtype == "UINT8" and name not in boundary:
            problems.append(Problem(name, "uint8", "UINT8 is only allowed as a network input or output"))
    return problems


def _cast_to(node: onnx.NodeProto) -> str:
    for attr in node.attribute:
        if attr.name == "to":
            return TensorProto.DataType.Name(attr.i)
    return ""


def _check_node(
    label: str, node: onnx.NodeProto, types: dict[str, str], constants: dict[str, Any]
) -> list[Problem]:
    op = node.op_type
    allowed = SUPPORTED_TYPES.get(op)
    if node.domain not in ("", "ai.onnx"):
        return [Problem(label, "operator", f"{node.domain}::{op} is not a standard ONNX operator")]
    if allowed is None:
        return [Problem(label, "operator", f"{op} is not imported by both TensorRT 8.5 and 10.x")]
    problems = []
    indices = _DATA_INPUTS.get(op, tuple(range(len(node.input))))
    typed = [node.input[i] for i in indices if i < len(node.input) and node.input[i]]
    if op in _OUTPUT_TYPED:
        typed += list(node.output)
    for name in typed:
        dtype = types.get(name, "")
        if dtype == "UINT8" and op == "Cast":
            continue  # the boundary rule (_check_io) decides where a UINT8 cast may sit
        if _trt_type(dtype) not in allowed:
            problems.append(
                Problem(label, "dtype", f"{op} on {dtype} ({name}); both versions take {sorted(allowed)}")
            )
    if op == "Where" and types.get(node.input[0]) != BOOL:
        problems.append(Problem(label, "dtype", "Where's condition must be BOOL"))
    if op in ("Conv", "ConvTranspose") and len(node.input) > 1 and node.input[1] not in constants:
        problems.append(Problem(label, "initializer", f"{op} weights must be an initializer"))
    if op in ("Squeeze", "Unsqueeze", "Slice") or op.startswith("Reduce"):
        axes_at = 3 if op == "Slice" else 1
        if len(node.input) > axes_at and node.input[axes_at] and node.input[axes_at] not in constants:
            problems.append(Problem(label, "initializer", f"{op} axes must be a constant"))
    if op == "Resize":
        attrs = {a.name: a for a in node.attribute}
        mode = attrs["mode"].s.decode() if "mode" in attrs else "nearest"
        transform = (
            attrs["coordinate_transformation_mode"].s.decode()
            if "coordinate_transformation_mode" in attrs
            else "half_pixel"
        )
        if mode not in _RESIZE_MODES or transform not in _RESIZE_TRANSFORMS:
            problems.append(Problem(label, "attribute", f"Resize mode {mode}/{transform} is not supported"))
        if "antialias" in attrs and attrs["antialias"].i:
            problems.append(Problem(label, "attribute", "Resize antialias is not supported"))
    return problems


def _check_int64_constants(
    graph: onnx.GraphProto, constants: dict[str, Any], consumers: dict[str, list[onnx.NodeProto]]
) -> list[Problem]:
    """TensorRT 8.5 clamps INT64 constants to int32: harmless for Slice bounds (INT64_MAX means "to the
    end"), wrong for any other use."""
    problems = []
    for name, value in constants.items():
        array = np.asarray(value)
        if array.dtype != np.int64 or array.size == 0:
            continue
        if array.min() >= _INT32.min and array.max() <= _INT32.max:
            continue
        uses = consumers.get(name, [])
        if all(node.op_type == "Slice" and list(node.input).index(name) in (1, 2) for node in uses):
            continue
        problems.append(
            Problem(name, "int64", "an INT64 constant outside the int32 range is clamped by TensorRT 8.5")
        )
    return problems
