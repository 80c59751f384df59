"""The README demo: make a dataset, train a model, start the agent, detect anomalies, print results.

Every step runs the same `edge-agent` command a user would type, and prints it first.
Run with: .venv/bin/python scripts/demo.py [--out demo-out]
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from edge_agent.client import EdgeAgentClient
from edge_agent.testing.synthetic import write_synthetic_dataset

EDGE_AGENT = [sys.executable, "-m", "edge_agent"]


def step(title: str, args: list[str], capture: bool = False) -> str:
    print(f"\n== {title}\n$ edge-agent {shlex.join(args)}", flush=True)
    done = subprocess.run(
        EDGE_AGENT + args, check=False, text=True, stdout=subprocess.PIPE if capture else None
    )
    if done.returncode not in (0, 1) or (done.returncode == 1 and not capture):
        sys.exit(f"demo: `edge-agent {args[0]}` failed with exit code {done.returncode}")
    return done.stdout or ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("demo-out"))
    args = parser.parse_args()
    out: Path = args.out.resolve()
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)

    print("== 1. A Lookout for Vision dataset: textured parts, scratches and stains with exact masks")
    train = write_synthetic_dataset(out / "train-dataset", n_normal=20, n_anomalous=20, seed=0)
    test = write_synthetic_dataset(out / "test-dataset", n_normal=10, n_anomalous=20, seed=1, prefix="test-")
    print(f"train manifest: {train}\ntest manifest:  {test}")

    step(
        "2. Train a segmentation model on the CPU (evaluated on the test dataset)",
        [
            "train",
            str(train),
            "--test-dataset",
            str(test),
            "--output",
            str(out / "model"),
            "--project",
            "demo",
        ],
    )

    models = out / "models"
    models.mkdir()
    (models / "demo-model").symlink_to(out / "model")
    socket = f"unix://{tempfile.mkdtemp(prefix='edge-agent-demo-', dir='/tmp')}/agent.sock"
    serve = ["serve", "--socket", socket, "--models-dir", str(models)]
    print(
        f"\n== 3. Start the agent (a model component per folder in {models})\n$ edge-agent {shlex.join(serve)} &"
    )
    agent = subprocess.Popen(EDGE_AGENT + serve, stderr=(out / "agent.log").open("wb"))
    try:
        with EdgeAgentClient(socket) as client:
            client.wait_ready(30)
        step("4. List and start the model", ["models", "list", "--socket", socket])
        step("", ["models", "start", "demo-model", "--wait", "--socket", socket])
        images = sorted((out / "test-dataset" / "images").iterdir())
        picks = [p for p in images if "normal" in p.name][:2] + [p for p in images if "anomal" in p.name][:3]
        lines = step(
            "5. Detect anomalies through the agent (shared memory), masks and overlays to detections/",
            ["detect", "--socket", socket, "--component", "demo-model", "--mask-out", str(out / "detections")]
            + [str(p) for p in picks],
            capture=True,
        )
        print("\n== Results")
        for line in lines.splitlines():
            result = json.loads(line)
            if "error" in result:
                print(f"{Path(result['image']).name:28s} error: {result['error']}")
                continue
            types = ", ".join(
                f"{a['name']} {a['total_percentage_area']:.2%}" for a in result["anomalies"][1:]
            )
            verdict = "ANOMALOUS" if result["is_anomalous"] else "normal"
            print(
                f"{Path(result['image']).name:28s} {verdict:9s} score {result['anomaly_score']:.3f} "
                f"(threshold {result['anomaly_threshold']:.3f}) confidence {result['confidence']:.2f}  {types}"
            )
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.wait(30)
    print(f"\nEvaluation report: {out / 'model' / 'evaluation' / 'report.html'}")
    print(f"Detections report: {out / 'detections' / 'report.html'}")
    print(f"Agent log:         {out / 'agent.log'}")


if __name__ == "__main__":
    started = time.monotonic()
    main()
    print(f"demo finished in {time.monotonic() - started:.0f} s")
