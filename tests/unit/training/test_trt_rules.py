"""Exported graphs follow the rules TensorRT 8.5 and 10.x apply when parsing, checked without a GPU,
and the changes that made them do so leave every output as it was, to the bit."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F
from onnx import TensorProto, helper, numpy_helper

from edge_agent.imaging.overlay import read_rgb
from edge_agent.model_package import INPUT_IMAGE
from edge_agent.packager.trt_rules import MAX_OPSET, check_model
from edge_agent.testing.onnx_models import bright_blob_graph, heavy_graph
from edge_agent.training import TrainResult
from edge_agent.training.export import OPSET
from edge_agent.training.graph import MapSmoother


def rules(model: onnx.ModelProto) -> list[str]:
    return [f"{p.rule}: {p.detail}" for p in check_model(model)]


def test_trained_graphs_pass_the_tensorrt_rules(
    segmentation_model: TrainResult, classification_model: TrainResult
) -> None:
    for result in (segmentation_model, classification_model):
        model = onnx.load(str(result.package.graph_path))
        assert rules(model) == []
        assert model.opset_import[0].version == OPSET <= MAX_OPSET
        dims = [[d.dim_value for d in o.type.tensor_type.shape.dim] for o in model.graph.output]
        assert all(all(d > 0 for d in shape) for shape in dims), dims


@pytest.mark.parametrize(
    "model",
    [bright_blob_graph(128, 96, False), bright_blob_graph(128, 96, True), heavy_graph(128, 96)],
    ids=["blob", "blob-segmentation", "heavy"],
)
def test_the_test_packages_pass_the_tensorrt_rules(model: onnx.ModelProto) -> None:
    assert rules(model) == []


def _graph(nodes, inits, inputs, outputs, opset: int = 17) -> onnx.ModelProto:
    model = helper.make_model(
        helper.make_graph(nodes, "g", inputs, outputs, initializer=inits),
        opset_imports=[helper.make_opsetid("", opset)],
    )
    model.ir_version = 8
    return model


IMAGE = helper.make_tensor_value_info(INPUT_IMAGE, TensorProto.UINT8, [4, 4, 3])


def test_uint8_inside_the_graph_is_refused() -> None:
    """The old mask: a Gather on a uint8 palette straight to the output."""
    n = helper.make_node
    model = _graph(
        [
            n("Cast", [INPUT_IMAGE], ["f"], to=TensorProto.FLOAT),
            n("ReduceMax", ["f"], ["m"], axes=[2], keepdims=0),
            n("Cast", ["m"], ["label"], to=TensorProto.INT32),
            n("Gather", ["palette", "label"], ["mask"], axis=0),
        ],
        [numpy_helper.from_array(np.zeros((256, 3), np.uint8), "palette")],
        [IMAGE],
        [helper.make_tensor_value_info("mask", TensorProto.UINT8, [4, 4, 3])],
    )
    found = rules(model)
    assert any("UINT8 output must come straight from a Cast" in r for r in found)
    assert any("UINT8 is only allowed as a network input or output" in r for r in found)
    assert any("Gather on UINT8" in r for r in found)


def test_opset_dynamic_shapes_int64_outputs_and_unknown_ops_are_refused() -> None:
    n = helper.make_node
    model = _graph(
        [
            n("Cast", [INPUT_IMAGE], ["f"], to=TensorProto.FLOAT),
            n("Hardmax", ["f"], ["h"]),  # 10.x imports it, 8.5 does not
            n("ArgMax", ["h"], ["idx"], axis=2, keepdims=0),
        ],
        [],
        [helper.make_tensor_value_info(INPUT_IMAGE, TensorProto.UINT8, ["height", 4, 3])],
        [helper.make_tensor_value_info("idx", TensorProto.INT64, ["height", 4])],
        opset=18,
    )
    found = rules(model)
    assert any(r.startswith("opset: opset 18") for r in found)
    assert any("Hardmax is not imported by both" in r for r in found)
    assert any(r.startswith("static shapes") for r in found)
    assert any("no INT64 network inputs or outputs" in r for r in found)


def test_an_int64_constant_beyond_int32_is_refused_except_as_a_slice_bound() -> None:
    n = helper.make_node
    big = np.array([1 << 40], np.int64)
    model = _graph(
        [
            n("Cast", [INPUT_IMAGE], ["f"], to=TensorProto.FLOAT),
            n("Slice", ["f", "start", "end", "axis"], ["s"]),
            n("Gather", ["s", "big"], ["g"], axis=0),
            n("ReduceMax", ["g"], ["score"], keepdims=0),
            n("Reshape", ["score", "one"], ["out"]),
        ],
        [
            numpy_helper.from_array(np.array([0], np.int64), "start"),
            numpy_helper.from_array(np.array([np.iinfo(np.int64).max], np.int64), "end"),
            numpy_helper.from_array(np.array([0], np.int64), "axis"),
            numpy_helper.from_array(big, "big"),
            numpy_helper.from_array(np.array([1], np.int64), "one"),
        ],
        [IMAGE],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1])],
    )
    found = check_model(model)
    assert [p.node for p in found if p.rule == "int64"] == ["big"]


def _old_smoother(smoother: MapSmoother, grid_map: torch.Tensor) -> torch.Tensor:
    """The smoothing as exported before (F.pad reflect)."""
    x = F.interpolate(grid_map, scale_factor=float(smoother.upsample), mode="bilinear", align_corners=False)
    r = smoother.radius
    x = F.conv2d(F.pad(x, [r, r, 0, 0], mode="reflect"), smoother.kernel_x)
    return F.conv2d(F.pad(x, [0, 0, r, r], mode="reflect"), smoother.kernel_y)


@pytest.mark.parametrize("grid", [(8, 10), (12, 12), (3, 7)])
def test_the_padding_lookup_equals_reflect_padding_to_the_bit(grid) -> None:
    smoother = MapSmoother()
    grid_map = torch.randn(1, 1, *grid, generator=torch.Generator().manual_seed(sum(grid)))
    assert torch.equal(smoother(grid_map), _old_smoother(smoother, grid_map))


def test_masks_scores_and_areas_are_what_the_uint8_graph_gave(segmentation_model: TrainResult) -> None:
    """The exported graph's outputs equal the previous formulas (uint8 palette lookup on int64 labels,
    reflect padding) computed in torch on the same trained model, byte for byte for masks."""
    graph = segmentation_model.graph.eval()
    session = ort.InferenceSession(
        str(segmentation_model.package.graph_path), providers=["CPUExecutionProvider"]
    )
    palette_u8 = graph.palette.to(torch.uint8)
    for record in segmentation_model.evaluation.images[:8]:
        image = read_rgb(record.sample.image)
        with torch.no_grad():
            tensor = torch.from_numpy(np.array(image))
            amap, logits, grid, patches = graph.patch_outputs(tensor)
            smoothed = _old_smoother(graph.smoother, amap.view(1, 1, *grid))
            full = F.interpolate(
                smoothed, size=(graph.height, graph.width), mode="bilinear", align_corners=False
            )[0, 0]
            label = graph.label_index(full >= graph.pixel_threshold, logits, grid).to(torch.int64)
            old_mask = palette_u8[label].numpy()
            old_score = torch.sigmoid(
                (graph.image_score(smoothed, patches) - graph.center) / graph.scale
            ).numpy()
            new = [t.numpy() for t in graph(tensor)]
        assert np.array_equal(new[1], old_mask)  # torch, new formulas
        assert np.array_equal(new[0], old_score)
        score, mask, _ = session.run(None, {INPUT_IMAGE: image})
        agreement = float((mask == old_mask).all(axis=-1).mean())
        assert agreement >= 0.998, agreement  # the export's own parity bound (threshold-boundary pixels)
        assert score == pytest.approx(old_score, abs=1e-5)


def test_the_mask_is_painted_without_a_gather_or_a_transpose(segmentation_model: TrainResult) -> None:
    """A palette Gather per pixel took 12% of the cookies graph, and the Transpose of the [3, H, W]
    colour planes to [H, W, 3] 16%: the one-hot planes times the palette are a MatMul, and a Concat
    on a new last axis interleaves them, with the same bytes (bench/README.md#a-faster-model)."""
    graph = segmentation_model.graph
    model, sizes = _element_counts(segmentation_model.package.graph_path)
    full = graph.height * graph.width
    painted = [n.op_type for n in model.graph.node if sizes.get(n.output[0]) == 3 * full]
    assert "Gather" not in painted and "Transpose" not in painted, painted
    assert "MatMul" in painted and "Concat" in painted, painted


def test_no_gather_copies_a_full_size_map(segmentation_model: TrainResult) -> None:
    """Indexing the upsampled map as [0, 0] exported two Gathers that copied it (3% of the cookies
    graph); a view is a Reshape, which ONNX Runtime does without a copy."""
    graph = segmentation_model.graph
    model, sizes = _element_counts(segmentation_model.package.graph_path)
    full = graph.height * graph.width
    gathers = [
        n.output[0] for n in model.graph.node if n.op_type == "Gather" and sizes.get(n.output[0], 0) >= full
    ]
    assert not gathers, gathers


def _element_counts(path) -> dict[str, int]:
    model = onnx.shape_inference.infer_shapes(onnx.load(str(path)))
    sizes = {}
    for info in [*model.graph.value_info, *model.graph.input]:
        dims = [d.dim_value for d in info.type.tensor_type.shape.dim]
        sizes[info.name] = int(np.prod(dims)) if dims and all(dims) else 0
    return model, sizes


def test_the_distance_matrix_is_written_once_and_the_bitmap_is_not_transposed(
    segmentation_model: TrainResult,
) -> None:
    """The [patches, bank] matrix is the MatMul's output, read only by the ReduceMin (no Sub or Add
    pass over it); the full-size bitmap is read by its Cast and the box filter's Conv, not transposed
    or pooled (bench/README.md#a-faster-model: 8% and 4% of the cookies graph)."""
    graph = segmentation_model.graph
    model, sizes = _element_counts(segmentation_model.package.graph_path)
    patches = graph.features.work_size[0] // 8 * (graph.features.work_size[1] // 8)
    matrix = patches * int(graph.bank.shape[0])
    writers = [n for n in model.graph.node if sizes.get(n.output[0]) == matrix]
    assert [n.op_type for n in writers] == ["MatMul"], [n.op_type for n in writers]
    readers = [n.op_type for n in model.graph.node if writers[0].output[0] in n.input]
    assert readers == ["ReduceMin"], readers
    path, tensor = [], model.graph.input[0].name
    while len(path) < 4:  # the bitmap's way into the network: Cast, Reshape (no copy), Conv
        (reader,) = [n for n in model.graph.node if tensor in n.input]
        path.append(reader.op_type)
        if reader.op_type == "Conv":
            break
        tensor = reader.output[0]
    assert path == ["Cast", "Reshape", "Conv"], path


def test_the_trained_graph_runs_on_the_tensorrt_stand_in_like_the_cpu(
    segmentation_model: TrainResult, monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    """No GPU here: the stand-in TensorRT 8.5 (tests/unit/runtime/standins.py) parses the trained graph
    with the rules above and runs it with ONNX Runtime CPU; the backend's FP16 check passes on it."""
    from edge_agent.runtime import RuntimeOptions, open_runtime
    from tests.unit.runtime.standins import Knobs, install

    install(monkeypatch, "8.5.2.2", Knobs())
    package = segmentation_model.package
    runtime = open_runtime("tensorrt", package.graph_path, RuntimeOptions(cache_dir=tmp_path))
    cpu = open_runtime("cpu", package.graph_path, RuntimeOptions())
    try:
        assert runtime.precision == "fp16", runtime.reason
        for record in segmentation_model.evaluation.images[:4]:
            image = read_rgb(record.sample.image)
            got, want = runtime.run(image), cpu.run(image)
            assert np.array_equal(got["anomaly_mask"], want["anomaly_mask"])
            assert got["anomaly_score"] == pytest.approx(want["anomaly_score"], abs=1e-3)
    finally:
        runtime.close()
        cpu.close()


def test_shape_arithmetic_is_folded_and_outputs_stay_the_same() -> None:
    """Shape -> Gather -> Concat -> ConstantOfShape (int64) -> Pad: what F.pad's export looks like."""
    from edge_agent.training.export import fold_shape_arithmetic

    n = helper.make_node
    model = _graph(
        [
            n("Cast", [INPUT_IMAGE], ["f"], to=TensorProto.FLOAT),
            n("Shape", ["f"], ["shape"]),
            n("Gather", ["shape", "zero"], ["rows"], axis=0),
            n("Concat", ["rows", "rows"], ["two"], axis=0),
            n("ConstantOfShape", ["rank"], ["zeros"], value=numpy_helper.from_array(np.array([0], np.int64))),
            n("Concat", ["zeros", "pads_tail"], ["pads"], axis=0),
            n("Pad", ["f", "pads"], ["padded"], mode="reflect"),
            n("ReduceMax", ["padded"], ["m"], keepdims=0),
            n("Reshape", ["m", "one"], ["score"]),
        ],
        [
            numpy_helper.from_array(np.array([0], np.int64), "zero"),
            numpy_helper.from_array(np.array([2], np.int64), "rank"),
            numpy_helper.from_array(np.array([0, 1, 1, 0], np.int64), "pads_tail"),
            numpy_helper.from_array(np.array([1], np.int64), "one"),
        ],
        [IMAGE],
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, [1])],
    )
    assert any(p.op_type == "ConstantOfShape" for p in model.graph.node)
    folded = fold_shape_arithmetic(onnx.load_model_from_string(model.SerializeToString()))
    assert {node.op_type for node in folded.graph.node} == {"Cast", "Pad", "ReduceMax", "Reshape"}
    assert rules(folded) == []
    image = np.random.default_rng(0).integers(0, 256, (4, 4, 3), dtype=np.uint8)
    before = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    after = ort.InferenceSession(folded.SerializeToString(), providers=["CPUExecutionProvider"])
    assert np.array_equal(before.run(None, {INPUT_IMAGE: image})[0], after.run(None, {INPUT_IMAGE: image})[0])
