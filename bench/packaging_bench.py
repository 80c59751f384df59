"""Packaging job figures: artifact size and packaging time per target, plus one output tree.

    .venv/bin/python bench/packaging_bench.py [--model DIR [--sample-images DIR]] [--repeats 3]

Without --model it packages two built-in graphs: the tiny bright-blob classifier and a conv
stack (heavy_package, 224x224 inside the graph, 6 layers x 32 channels). The int8 row needs
sample images: --sample-images, else synthetic parts of the model's size
(edge_agent.testing.synthetic). Times are wall-clock medians of --repeats runs; the machine is
shared, so repeat and compare medians only.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from edge_agent.packager import GreengrassConfiguration, JobStore, PackagingRequest, start_job
from edge_agent.testing.onnx_models import bright_blob_package, heavy_package

NVIDIA = json.dumps({"gpu-code": "sm_86", "trt-ver": "10.3.0", "cuda-ver": "12.4"})
TARGETS: dict[str, dict[str, object]] = {
    "x86_64 CPU": {"target_platform": {"Os": "LINUX", "Arch": "X86_64"}},
    "x86_64 CPU int8": {"target_platform": {"Os": "LINUX", "Arch": "X86_64"}, "quantize": True},
    "arm64 CPU": {"target_platform": {"Os": "LINUX", "Arch": "ARM64"}},
    "x86_64 NVIDIA": {
        "target_platform": {"Os": "LINUX", "Arch": "X86_64", "Accelerator": "NVIDIA"},
        "compiler_options": NVIDIA,
    },
    "jetson_xavier": {"target_device": "jetson_xavier"},
}


def sample_images(model: Path, work: Path) -> Path:
    from edge_agent.model_package import load
    from edge_agent.testing.synthetic import write_synthetic_dataset

    manifest = load(model).manifest
    root = work / f"samples-{model.name}"
    write_synthetic_dataset(
        root, n_normal=10, n_anomalous=10, size=(manifest.width, manifest.height), labels=(), seed=1
    )
    return root / "images"


def run(model: Path, work: Path, repeats: int, samples: Path) -> list[dict[str, object]]:
    rows = []
    store = JobStore(work / "jobs.sqlite3")
    for label, fields in TARGETS.items():
        fields = dict(fields)
        quantize = bool(fields.pop("quantize", False))
        times, size, note = [], 0, ""
        for attempt in range(repeats):
            config = GreengrassConfiguration(
                component_name="bench.Model", component_version=f"1.0.{len(rows) * 100 + attempt}", **fields
            )
            started = time.perf_counter()
            request = PackagingRequest(
                model,
                config,
                output=str(work / "out"),
                quantize=quantize,
                sample_images=samples if quantize else None,
            )
            record = start_job(request, store)
            times.append(time.perf_counter() - started)
            if record.status != "SUCCEEDED":
                raise SystemExit(f"{label}: {record.status_message}")
            size = record.output["Greengrass"]["ArtifactBytes"]
            if quantize:
                import zipfile

                archive = record.output["Greengrass"]["Artifacts"][0]
                with zipfile.ZipFile(archive) as handle:
                    q = json.loads(handle.read("target.json"))["optimization"]["quantization"]
                note = (
                    f"int8 applied={q['applied']} drift={q.get('accuracy_check', {}).get('max_score_diff')}"
                )
        rows.append({"target": label, "zip_bytes": size, "median_s": statistics.median(times), "note": note})
    return rows


def tree(root: Path) -> str:
    lines = [str(root)]
    for path in sorted(root.rglob("*")):
        depth = len(path.relative_to(root).parts)
        size = f"  ({path.stat().st_size} B)" if path.is_file() else "/"
        lines.append("  " * depth + path.name + size)
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", type=Path, action="append", default=[], help="model package dir (repeatable)"
    )
    parser.add_argument("--sample-images", type=Path, help="images of the model's size for the int8 check")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-package-") as scratch:
        work = Path(scratch)
        models = list(args.model)
        if not models:
            models = [work / "bright-blob", work / "conv-stack"]
            bright_blob_package(models[0])
            heavy_package(models[1], 256, 256, side=224, layers=6, channels=32)
        for model in models:
            source = sum(p.stat().st_size for p in model.iterdir() if p.is_file())
            print(f"\nmodel {model.name}: source package {source} B")
            print(f"{'target':<18} {'model.zip':>10} {'median s':>9}  note")
            out = work / f"out-{model.name}"
            out.mkdir()
            samples = args.sample_images or sample_images(model, work)
            for row in run(model, out, args.repeats, samples):
                print(f"{row['target']:<18} {row['zip_bytes']:>10} {row['median_s']:>9.3f}  {row['note']}")
        one = next((work / f"out-{models[0].name}" / "out" / "artifacts").iterdir())
        example = work / "example"
        import shutil
        import zipfile

        version = sorted(p.name for p in one.iterdir())[0]
        (example / "recipes").mkdir(parents=True)
        for recipe in (one.parent.parent / "recipes").glob(f"{one.name}-{version}.*"):
            shutil.copy(recipe, example / "recipes")
        shutil.copytree(one / version, example / "artifacts" / one.name / version)
        with zipfile.ZipFile(example / "artifacts" / one.name / version / "model.zip") as handle:
            handle.extractall(example / "model.zip contents")
        print("\nOutput tree of one packaged component (zip contents shown beside it):")
        print(tree(example))
    return 0


if __name__ == "__main__":
    sys.exit(main())
