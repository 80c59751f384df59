"""The agent stays lean: serving never loads torch or the training code."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO


def test_serving_imports_neither_torch_nor_training():
    code = (
        "import sys, edge_agent.server.daemon, edge_agent.cli.serve, edge_agent.cli.detect, edge_agent.client;"
        "bad = [m for m in sys.modules if m == 'torch' or m.startswith('edge_agent.training')];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_registry_runtime_and_imaging_do_not_import_grpc():
    code = (
        "import sys, edge_agent.registry, edge_agent.runtime, edge_agent.imaging.shm, edge_agent.inference;"
        "sys.exit(1 if 'grpc' in sys.modules else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO).returncode == 0


# A plain `pip install anomaly-edge-agent` is the device runtime: these are not installed there.
WORKSTATION_ONLY = ("torch", "onnx", "yaml", "tqdm", "boto3")
_BLOCK = (
    "import sys\n"
    "class Block:\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    f"        if name.split('.')[0] in {WORKSTATION_ONLY!r}:\n"
    "            raise ImportError(f'{name} is not part of the device runtime')\n"
    "sys.meta_path.insert(0, Block())\n"
)


def test_device_runtime_needs_no_workstation_library():
    code = _BLOCK + (
        "import edge_agent.server.daemon, edge_agent.client, edge_agent.inference\n"
        "import edge_agent.runtime.ort_cpu, edge_agent.imaging.shm, edge_agent.imaging.inplace\n"
        "from edge_agent.cli import build_parser\n"
        "build_parser()\n"  # every verb's arguments, as `edge-agent serve` builds them
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_workstation_verb_without_its_extra_says_what_to_install(tmp_path):
    code = _BLOCK + "from edge_agent.cli import main\nsys.exit(main(sys.argv[1:]))\n"
    command = [sys.executable, "-c", code, "train", str(tmp_path), "--output", str(tmp_path / "m")]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 1, done.stdout + done.stderr
    if sys.version_info < (3, 10):  # the device Pythons (CI runs this file on 3.8 too)
        assert "runs on a workstation with Python >= 3.10" in done.stderr
    else:
        assert "needs the 'train' extra (missing: torch, onnx)" in done.stderr
        assert "pip install 'anomaly-edge-agent[train]'" in done.stderr
