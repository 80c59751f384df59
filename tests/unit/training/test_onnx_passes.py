"""Pad fusion: zero Pads fold into the Conv after them, every output stays the same to the bit,
and what cannot be folded is left alone."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from edge_agent.training import TrainResult
from edge_agent.training.onnx_passes import fuse_pads_into_convs

n = helper.make_node


def _model(pad_mode: str = "constant", value: float = 0.0, second_user: bool = False) -> onnx.ModelProto:
    """x [1, 4, 9, 8] -> Pad (TensorFlow SAME for a 3x3 stride-2 conv: 0 before, 1 after) -> Conv."""
    rng = np.random.default_rng(0)
    nodes = [
        n("Pad", ["x", "pads", "value"], ["padded"], mode=pad_mode),
        n("Conv", ["padded", "w"], ["y"], strides=[2, 2], pads=[1, 0, 0, 1]),
    ]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 5, 4])]
    if second_user:
        nodes.append(n("Relu", ["padded"], ["z"]))
        outputs.append(helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 4, 10, 9]))
    inits = [
        numpy_helper.from_array(np.array([0, 0, 0, 0, 0, 0, 1, 1], np.int64), "pads"),
        numpy_helper.from_array(np.array(value, np.float32), "value"),
        numpy_helper.from_array(rng.standard_normal((4, 1, 3, 3)).astype(np.float32), "w"),
    ]
    for node in nodes:
        if node.op_type == "Conv":
            node.attribute.append(helper.make_attribute("group", 4))
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 9, 8])], outputs, inits
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


def _run(model: onnx.ModelProto, x: np.ndarray) -> list[np.ndarray]:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # ours only
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})


def test_a_zero_pad_folds_into_the_conv_with_the_same_result_to_the_bit() -> None:
    model = _model()
    x = np.random.default_rng(1).standard_normal((1, 4, 9, 8)).astype(np.float32)
    before = _run(model, x)
    assert fuse_pads_into_convs(model) == 1
    assert [node.op_type for node in model.graph.node] == ["Conv"]
    conv = model.graph.node[0]
    assert conv.input[0] == "x"
    # begin pads (h, w) then end pads: the Conv's own [1, 0, 0, 1] plus the Pad's [0, 0, 1, 1]
    assert list(next(a for a in conv.attribute if a.name == "pads").ints) == [1, 0, 1, 2]
    assert {init.name for init in model.graph.initializer} == {"w"}  # the Pad's constants are gone
    onnx.checker.check_model(model, full_check=True)
    after = _run(model, x)
    assert np.array_equal(before[0], after[0])


@pytest.mark.parametrize(
    "kwargs",
    [{"pad_mode": "reflect"}, {"value": 1.0}, {"second_user": True}],
    ids=["reflect", "non-zero", "two-users"],
)
def test_pads_that_are_not_plain_zero_padding_of_one_conv_stay(kwargs: dict) -> None:
    model = _model(**kwargs)
    assert fuse_pads_into_convs(model) == 0
    assert [node.op_type for node in model.graph.node][:2] == ["Pad", "Conv"]


def test_trained_graphs_have_no_pad_before_a_conv(segmentation_model: TrainResult) -> None:
    model = onnx.load(str(segmentation_model.package.graph_path))
    producers = {out: node for node in model.graph.node for out in node.output}
    convs = [node for node in model.graph.node if node.op_type == "Conv"]
    assert convs
    assert not [c.name for c in convs if producers.get(c.input[0]) and producers[c.input[0]].op_type == "Pad"]
    assert any(
        len(set(next(a for a in c.attribute if a.name == "pads").ints)) > 1 for c in convs
    )  # asymmetric
