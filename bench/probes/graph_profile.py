"""Where a model package's graph spends its time: ONNX Runtime's own profile, per operator type and per node.

Runs the package's graph with ONNX Runtime's default CPU session and profiling on, on a real
cookie photo of the graph's size (`trained_overhead.frame`), and sums the kernel times per run. It
found the Transpose that interleaved the mask's colour planes: 16% of the cookies graph on a 2-core
Xeon (bench/README.md#a-faster-model).

Run: .venv/bin/python bench/probes/graph_profile.py MODEL_DIR [RUNS] [TOP]
"""

from __future__ import annotations

import collections
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from trained_overhead import frame

from edge_agent.model_package import INPUT_IMAGE
from edge_agent.model_package import load as load_package


def main() -> None:
    model = Path(sys.argv[1])
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 60
    top = int(sys.argv[3]) if len(sys.argv) > 3 else 12
    package = load_package(model)
    options = ort.SessionOptions()
    options.enable_profiling = True
    options.profile_file_prefix = str(Path(tempfile.mkdtemp(prefix="ea-profile-")) / "ort")
    session = ort.InferenceSession(str(package.graph_path), options, providers=["CPUExecutionProvider"])
    feeds = {INPUT_IMAGE: frame(package.manifest.width, package.manifest.height)}
    for _ in range(runs):
        session.run(None, feeds)
    events = json.loads(Path(session.end_profiling()).read_text())
    by_op: collections.Counter[str] = collections.Counter()
    by_node: collections.Counter[tuple[str, str]] = collections.Counter()
    shapes = {}
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            node, op = event["name"].removesuffix("_kernel_time"), event["args"]["op_name"]
            by_op[op] += event["dur"]
            by_node[op, node] += event["dur"]
            shapes[node] = event["args"].get("output_type_shape")
    total = sum(by_op.values())
    print(
        f"{package.graph_path}; onnxruntime {ort.__version__}; {runs} runs; kernels {total / runs / 1e3:.2f} ms a run\n"
    )
    print("| operator | ms a run | share |\n|---|---|---|")
    for op, us in by_op.most_common(top):
        print(f"| {op} | {us / runs / 1e3:.2f} | {us / total:.1%} |")
    print("\n| node | operator | ms a run | output |\n|---|---|---|---|")
    for (op, node), us in by_node.most_common(top):
        print(f"| {node} | {op} | {us / runs / 1e3:.2f} | {shapes[node]} |")


if __name__ == "__main__":
    main()
