"""Train/serve parity: the agent serving a trained package answers exactly what its evaluation recorded."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from edge_agent.client import SharedMemoryBuffer
from edge_agent.imaging.overlay import read_rgb
from edge_agent.model_package import sha256_file
from edge_agent.training import TrainResult


def test_agent_results_equal_the_evaluation_of_the_trained_package(
    segmentation_model: TrainResult, start_agent
) -> None:
    """Real agent process, real socket, shared memory and mask segments made by this process."""
    summary = segmentation_model.evaluation
    assert summary is not None
    package = segmentation_model.package
    agent = start_agent()
    served = agent.add_model("trained", package.directory)
    assert sha256_file(served / package.manifest.graph) == sha256_file(package.graph_path)
    agent.client.start_model("trained", wait=True)

    width, height = package.manifest.width, package.manifest.height
    size = width * height * 3
    with SharedMemoryBuffer.create(size) as frame, SharedMemoryBuffer.create(size) as mask:
        for record in summary.images:
            served_result = agent.client.detect("trained", record.sample.image, shm=frame, mask_shm=mask)
            evaluated = record.detection
            assert served_result.is_anomalous == evaluated.is_anomalous
            assert served_result.anomaly_score == pytest.approx(evaluated.anomaly_score, abs=1e-6)
            assert served_result.confidence == pytest.approx(evaluated.confidence, abs=1e-6)
            assert served_result.anomaly_threshold == pytest.approx(package.manifest.threshold)
            assert [a.name for a in served_result.anomalies] == [a.name for a in evaluated.anomalies]
            for got, want in zip(served_result.anomalies, evaluated.anomalies, strict=True):
                assert got.hex_color == want.hex_color
                assert got.area == pytest.approx(want.area, abs=1e-6)
            assert record.predicted_mask is not None
            written = np.asarray(Image.open(record.predicted_mask).convert("RGB"))
            assert served_result.mask is not None and np.array_equal(served_result.mask, written)
    # and the inline path gives the same answer as shared memory
    first = summary.images[0]
    inline = agent.client.detect("trained", read_rgb(first.sample.image))
    assert inline.anomaly_score == pytest.approx(first.detection.anomaly_score, abs=1e-6)
