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
