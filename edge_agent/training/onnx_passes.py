"""Graph rewrites applied to the exported ONNX model that change no value, only the work.

`fuse_pads_into_convs`: the backbone's TensorFlow "SAME" padding exports as a Pad node before
each convolution (PyTorch's Conv2d pads symmetrically only; SAME pads one pixel more at the
bottom and right of a stride-2 layer). A zero Pad followed by a Conv is the same as that Conv with
its `pads` attribute, which takes begin and end pads separately. ONNX Runtime runs a separate Pad
as its own pass over the tensor and, around it, converts the tensor out of and back into its
blocked convolution layout: on the cookies model the 12 Pads were about a quarter of the run
time. TensorRT reads asymmetric Conv pads as pre- and post-padding. The results are the same to
the bit (zeros are added either way).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper


def _attribute(node: onnx.NodeProto, name: str) -> onnx.AttributeProto | None:
    return next((a for a in node.attribute if a.name == name), None)


def _zero_pads(node: onnx.NodeProto, constants: dict[str, np.ndarray]) -> list[int] | None:
    """The spatial [begin..., end...] pads of a constant-zero Pad on N and C untouched, else None."""
    mode = _attribute(node, "mode")
    if mode is not None and mode.s != b"constant":
        return None
    if len(node.input) < 2 or node.input[1] not in constants:
        return None  # opset < 11 attributes or run-time pads: left alone
    if len(node.input) > 3 and node.input[3]:
        return None  # explicit axes
    if len(node.input) > 2 and node.input[2]:
        value = constants.get(node.input[2])
        if value is None or np.any(value != 0):
            return None
    pads = [int(p) for p in constants[node.input[1]].reshape(-1)]
    rank = len(pads) // 2
    if rank < 3 or min(pads) < 0 or any(pads[i] or pads[rank + i] for i in (0, 1)):
        return None
    return pads[2:rank] + pads[rank + 2 :]


def fuse_pads_into_convs(model: onnx.ModelProto) -> int:
    """Fold every zero Pad whose only consumer is a Conv into that Conv's pads; returns how many."""
    graph = model.graph
    constants = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    outputs = {o.name for o in graph.output}
    fused = []
    for node in graph.node:
        if node.op_type != "Pad" or node.output[0] in outputs:
            continue
        users = consumers.get(node.output[0], [])
        if len(users) != 1 or users[0].op_type != "Conv" or users[0].input[0] != node.output[0]:
            continue
        conv = users[0]
        pads = _zero_pads(node, constants)
        auto_pad = _attribute(conv, "auto_pad")
        if pads is None or (auto_pad is not None and auto_pad.s not in (b"", b"NOTSET")):
            continue
        spatial = len(pads) // 2
        old = _attribute(conv, "pads")
        current = list(old.ints) if old is not None else [0] * (2 * spatial)
        if len(current) != len(pads):
            continue
        if old is not None:
            conv.attribute.remove(old)
        conv.attribute.append(
            helper.make_attribute("pads", [a + b for a, b in zip(current, pads, strict=True)])
        )
        conv.input[0] = node.input[0]
        fused.append(node)
    for node in fused:
        graph.node.remove(node)
    used = {name for node in graph.node for name in node.input} | outputs
    keep = [init for init in graph.initializer if init.name in used]
    del graph.initializer[:]
    graph.initializer.extend(keep)
    return len(fused)
