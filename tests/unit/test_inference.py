from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_agent.errors import InvalidInputError, ModelFailedError
from edge_agent.inference import Predictor, confidence_of
from edge_agent.model_package import OUTPUT_SCORE
from edge_agent.testing.onnx_models import bright_blob_package


@given(score=st.floats(0, 1), threshold=st.floats(0.01, 0.99))
def test_confidence_is_half_at_the_threshold_and_grows_away_from_it(score, threshold):
    value = confidence_of(score, threshold)
    assert 0.5 <= value <= 1.0
    assert confidence_of(threshold, threshold) == pytest.approx(0.5)
    farther = min(1.0, score + 0.01) if score >= threshold else max(0.0, score - 0.01)
    assert confidence_of(farther, threshold) >= value - 1e-12


def test_confidence_at_the_ends_of_the_scale_is_one():
    assert confidence_of(1.0, 0.3) == 1.0 and confidence_of(0.0, 0.3) == 1.0
    assert confidence_of(1.0, 1.0) == 0.5 and confidence_of(0.0, 0.0) == 0.5


@pytest.fixture(scope="module")
def predictor(tmp_path_factory):
    return Predictor.open(bright_blob_package(tmp_path_factory.mktemp("p")).directory)


def test_decision_uses_the_float32_values_the_client_receives(predictor):
    just_below = np.nextafter(np.float32(0.5), np.float32(0))
    result = predictor.interpret({OUTPUT_SCORE: np.array([just_below], np.float32)})
    assert not result.is_anomalous
    result = predictor.interpret({OUTPUT_SCORE: np.array([0.5], np.float32)})
    assert result.is_anomalous and result.confidence == 0.5


def test_scores_outside_zero_one_are_clipped_and_other_dtypes_rounded_to_float32(predictor):
    assert predictor.interpret({OUTPUT_SCORE: np.array([1.7], np.float32)}).anomaly_score == 1.0
    assert predictor.interpret({OUTPUT_SCORE: np.array([[-0.2]], np.float32)}).anomaly_score == 0.0
    result = predictor.interpret({OUTPUT_SCORE: np.array([0.1], np.float64)})
    assert result.anomaly_score == float(np.float32(0.1)) != 0.1


def test_a_nan_score_is_a_model_failure_not_a_verdict(predictor):
    with pytest.raises(ModelFailedError, match="NaN anomaly score"):
        predictor.interpret({OUTPUT_SCORE: np.array([np.nan], np.float32)})


def test_predict_refuses_images_of_another_size(predictor):
    with pytest.raises(InvalidInputError, match=r"takes uint8 \[96, 128, 3\]"):
        predictor.predict(np.zeros((128, 96, 3), np.uint8))
