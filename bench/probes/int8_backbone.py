"""Probe: cookies (seed 0, the default split) with the graph's Convs quantised to int8.

ONNX Runtime static quantisation (QDQ, uint8 activations, int8 weights, per-tensor and per-channel),
calibrated on 24 training images, applied to the exported package's graph. Each quantised graph is
evaluated on the held-out images through a copy of the package (the manifest's graph hash updated;
threshold and score scale left as calibrated for float32) and timed against the float32 graph in
alternating blocks (bench/model_speed.py's `time_graphs`).
"""

from __future__ import annotations

import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from model_speed import COOKIES, time_graphs

from edge_agent.evaluation import evaluate
from edge_agent.imaging.overlay import read_rgb
from edge_agent.model_package import INPUT_IMAGE, sha256_file
from edge_agent.training import TrainConfig, train


class Images(CalibrationDataReader):
    def __init__(self, images: list) -> None:
        self.images = iter(images)

    def get_next(self) -> dict | None:
        image = next(self.images, None)
        return None if image is None else {INPUT_IMAGE: image}


def accuracy(summary) -> str:
    iou = statistics.fmean(label.aiou for label in summary.labels if label.aiou is not None)
    return f"ROC AUC {summary.metrics.roc_auc:.3f} F1 {summary.metrics.f1:.3f} IoU {iou:.4f}"


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="int8-backbone-"))
    result = train(
        TrainConfig(dataset=COOKIES, output=work / "fp32", seed=0, project="cookies", progress=False)
    )
    print("float32:", accuracy(result.evaluation))
    calibration = [read_rgb(sample.image) for sample in result.train_dataset.samples[:24]]
    graphs = {"float32": result.package.graph_path}
    for name, per_channel in (("int8 per tensor", False), ("int8 per channel", True)):
        package = work / name.replace(" ", "-")
        shutil.copytree(result.package.directory, package, ignore=shutil.ignore_patterns("evaluation"))
        quantize_static(
            str(result.package.graph_path),
            str(package / "model.onnx"),
            Images(calibration),
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=["Conv"],
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=per_channel,
        )
        manifest = package / "manifest.json"
        manifest.write_text(
            manifest.read_text().replace(
                sha256_file(result.package.graph_path), sha256_file(package / "model.onnx")
            )
        )
        summary = evaluate(
            package, result.test_dataset, work / f"eval-{package.name}", len(result.train_dataset.samples)
        )
        print(f"{name}:", accuracy(summary))
        graphs[name] = package / "model.onnx"
    image = read_rgb(next(r for r in result.evaluation.images if r.sample.is_anomalous).sample.image)
    times = time_graphs(graphs, image, 15, 10)
    base = statistics.median(times["float32"])
    for name, values in times.items():
        print(f"{name}: raw p50 {statistics.median(values):.2f} ms, {statistics.median(values) / base:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
