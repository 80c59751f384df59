"""`--runtime-spin` reaches the real ONNX Runtime session as its config entries."""

from __future__ import annotations

import pytest

from edge_agent.runtime import RuntimeOptions, open_runtime
from edge_agent.runtime.base import SPIN_MODES
from edge_agent.testing.onnx_models import bright_blob_package


@pytest.mark.parametrize("mode", sorted(SPIN_MODES))
def test_each_spin_mode_sets_its_session_entries(tmp_path, mode):
    package = bright_blob_package(tmp_path / "m")
    runtime = open_runtime("cpu", package.graph_path, RuntimeOptions(spin=mode))
    try:
        options = runtime._session.get_session_options()
        for key, value in SPIN_MODES[mode].items():
            assert options.get_session_config_entry(key) == value
    finally:
        runtime.close()
