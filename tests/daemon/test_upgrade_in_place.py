"""A model component upgraded in place (same name, new files) is noticed by content and reloaded.

Greengrass upgrades a model component by running the old version's shutdown and the new version's
startup: the folder `<models dir>/NAME` keeps its name while its files change (our device step
re-points the links of the component's work folder at the new artifacts). When both happen within
one poll interval the agent never sees the name go away, so names alone cannot tell.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from edge_agent.model_package import MANIFEST_NAME, Manifest, load, save
from edge_agent.testing.onnx_models import bright_blob_package
from tests.daemon.helpers import HEIGHT, WIDTH

pytestmark = pytest.mark.timeout(120)

# 0.2% bright pixels: score 50 * 0.002 = 0.1, normal at threshold 0.5, anomalous at threshold 0.05.
SLIGHTLY_BRIGHT = np.full((HEIGHT, WIDTH, 3), 100, np.uint8)
SLIGHTLY_BRIGHT[0, :25] = 255


def _artifact(root: Path, version: int, threshold: float) -> Path:
    """A model component's unarchived artifact for one version (read-only in Greengrass)."""
    package = bright_blob_package(root / f"v{version}" / "model")
    manifest = package.manifest.to_json()
    manifest.update(
        threshold=threshold, model_arn=f"arn:aws:lookoutvision:local:000000000000:model/up/{version}"
    )
    manifest.pop("graph_sha256")
    save(package.directory, Manifest.from_json(manifest))
    return package.directory


def _point_view_at(view: Path, artifact: Path) -> None:
    """What the model component's startup step does: links in its work folder, replaced atomically."""
    view.mkdir(parents=True, exist_ok=True)
    for entry in artifact.iterdir():
        tmp = view / f".{entry.name}.tmp"
        tmp.symlink_to(entry)
        os.replace(tmp, view / entry.name)


@pytest.fixture
def slow_poll_agent(start_agent):
    # The poller never runs during the test, so the agent sees the change only when asked.
    return start_agent("--poll-interval", "3600")


def test_new_files_under_the_same_name_are_reloaded(slow_poll_agent, tmp_path):
    agent = slow_poll_agent
    view = tmp_path / "work" / "model"
    _point_view_at(view, _artifact(tmp_path, 1, threshold=0.5))
    (agent.models_dir / "up").symlink_to(view)
    running = agent.client.start_model_if_needed("up", timeout_s=60)
    assert running.arn.endswith("/up/1")
    assert not agent.client.detect("up", SLIGHTLY_BRIGHT).is_anomalous

    # Shutdown of 1.0.0 unlinks, startup of 2.0.0 links again, both between two polls.
    (agent.models_dir / "up").unlink()
    _point_view_at(view, _artifact(tmp_path, 2, threshold=0.05))
    (agent.models_dir / "up").symlink_to(view)

    state = agent.client.describe_model("up")
    assert not (state.status == "RUNNING" and state.arn.endswith("/up/1")), state
    assert state.arn.endswith("/up/2")
    state = agent.client.wait_for("up", "RUNNING", timeout_s=60)  # it was running: it is reloaded
    assert state.arn.endswith("/up/2")
    detection = agent.client.detect("up", SLIGHTLY_BRIGHT)
    assert detection.is_anomalous and detection.anomaly_threshold == pytest.approx(0.05)
    assert "event=model_changed model=up" in agent.log()


def test_files_rewritten_in_place_are_reloaded_and_a_stopped_model_stays_stopped(slow_poll_agent, tmp_path):
    agent = slow_poll_agent
    first = _artifact(tmp_path, 1, threshold=0.5)
    folder = agent.models_dir / "copy"
    shutil.copytree(first, folder)
    agent.client.start_model_if_needed("copy", timeout_s=60)
    assert agent.client.stop_model("copy") == "STOPPED"

    shutil.copytree(_artifact(tmp_path, 2, threshold=0.05), folder, dirs_exist_ok=True)  # same inodes
    state = agent.client.describe_model("copy")
    assert state.status == "STOPPED" and state.arn.endswith("/up/2")
    agent.client.start_model("copy", wait=True, timeout_s=60)
    assert agent.client.detect("copy", SLIGHTLY_BRIGHT).is_anomalous
    assert load(folder).manifest.threshold == pytest.approx(0.05)
    assert (folder / MANIFEST_NAME).is_file()


def test_an_engine_cache_filling_up_does_not_reload_the_model(slow_poll_agent, tmp_path):
    agent = slow_poll_agent
    folder = agent.models_dir / "cache"
    shutil.copytree(_artifact(tmp_path, 1, threshold=0.5), folder)
    (folder / "engines").mkdir()
    agent.client.start_model_if_needed("cache", timeout_s=60)
    (folder / "engines" / "sm_72-trt8.5.2.engine").write_bytes(b"built on the device")
    state = agent.client.describe_model("cache")
    assert state.status == "RUNNING"
    assert "event=model_changed model=cache" not in agent.log()
