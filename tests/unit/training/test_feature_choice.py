"""Automatic feature choice: a candidate is taken only when it separates the training images clearly
better out of fold, and the choice reaches the manifest.

The first tests hand `choose_features` patch features made here (an `extract` that returns tensors
built so that one candidate sees the defect and the other does not): the decision is what is
tested, on the real fold banks and scoring. The last trains a real model (real backbone) with
small candidates so that it stays fast.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from edge_agent.model_package import load
from edge_agent.training import feature_choice, train
from edge_agent.training.feature_choice import STANDARD, Candidate, choose_features, oof_image_scores
from edge_agent.training.features import FeatureConfig
from edge_agent.training.fit import FitSettings, build_fold_banks, fit, patch_rows

from .conftest import SyntheticData, small_config

COUNT, ANOMALOUS = 24, 8
IS_ANOMALOUS = np.arange(COUNT) >= COUNT - ANOMALOUS
FINE_BANK = 5  # below the 5% coreset of these folds (about 23 patches): the cap decides
CANDIDATES = {
    STANDARD: Candidate(FeatureConfig(long_side=192)),
    "fine": Candidate(FeatureConfig(long_side=256, aggregate=1), max_bank=FINE_BANK),
}


def _features(defect: float, seed: int) -> torch.Tensor:
    """[N, 8, 6, 6] noise; anomalous images get `defect` added to one patch (a thin crack's patch)."""
    generator = torch.Generator().manual_seed(seed)
    features = torch.randn(COUNT, 8, 6, 6, generator=generator)
    features[IS_ANOMALOUS, :, 2, 3] += defect
    return features


def _extractor(defects: dict[str, float]):
    calls: list[str] = []
    by_config = {candidate.features: name for name, candidate in CANDIDATES.items()}

    def extract(config: FeatureConfig) -> torch.Tensor:
        name = by_config[config]
        calls.append(name)
        return _features(defects[name], seed=len(calls))

    return extract, calls


@pytest.fixture(autouse=True)
def _small_candidates(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(feature_choice, "CANDIDATES", CANDIDATES)


def _oof_scores(features: torch.Tensor, settings: FitSettings | None = None) -> np.ndarray:
    banks = build_fold_banks(patch_rows(features), IS_ANOMALOUS, settings or FitSettings(), seed=0)
    return oof_image_scores(features, banks)


def test_out_of_fold_scores_rank_the_defect_images_above_the_normals() -> None:
    scores = _oof_scores(_features(6.0, seed=0))
    assert scores[IS_ANOMALOUS].min() > scores[~IS_ANOMALOUS].max()
    blind = _oof_scores(_features(0.0, seed=0))
    assert blind[IS_ANOMALOUS].min() < blind[~IS_ANOMALOUS].max()


def test_fit_reuses_the_chosen_features_fold_banks_with_the_same_result() -> None:
    """The choice hands `fit` the fold banks it built: fitting with them is fitting from scratch."""
    extract, _ = _extractor({STANDARD: 0.0, "fine": 6.0})
    choice = choose_features(extract, IS_ANOMALOUS, True, FitSettings(), seed=0)
    assert choice.fold_banks is not None and choice.fold_banks.folds == FitSettings().folds
    reused = fit(choice.features, IS_ANOMALOUS, None, 0, choice.settings, 0, fold_banks=choice.fold_banks)
    fresh = fit(choice.features, IS_ANOMALOUS, None, 0, choice.settings, 0)
    np.testing.assert_array_equal(reused.oof_scores, fresh.oof_scores)
    assert reused.calibration == fresh.calibration
    other = _features(6.0, seed=9)[:-1]
    with pytest.raises(ValueError, match="fold banks of 24 images given for 23"):
        fit(other, IS_ANOMALOUS[:-1], None, 0, FitSettings(), 0, fold_banks=choice.fold_banks)


def test_a_candidate_that_sees_the_defect_is_chosen_and_its_features_are_returned() -> None:
    extract, calls = _extractor({STANDARD: 0.0, "fine": 6.0})
    choice = choose_features(extract, IS_ANOMALOUS, True, FitSettings(), seed=0)
    assert choice.name == "fine" and choice.config == CANDIDATES["fine"].features
    assert calls == [STANDARD, "fine"]  # each candidate extracted once, the winner not again
    assert torch.equal(choice.features, _features(6.0, seed=2))
    separation = choice.details["separation"]
    assert separation["fine"] > separation[STANDARD] + feature_choice.MARGIN
    assert choice.details["chosen"] == "fine" and "ahead" in str(choice.details["reason"])


def test_the_standard_features_stay_when_no_candidate_separates_clearly_better() -> None:
    extract, _ = _extractor({STANDARD: 6.0, "fine": 6.0})
    choice = choose_features(extract, IS_ANOMALOUS, True, FitSettings(), seed=0)
    assert choice.name == STANDARD and choice.config == CANDIDATES[STANDARD].features
    assert choice.settings == FitSettings()  # the standard candidate caps nothing
    assert torch.equal(choice.features, _features(6.0, seed=1))
    assert "better" in str(choice.details["reason"])


def test_a_candidates_bank_cap_is_what_the_choice_ranks_and_what_fit_builds() -> None:
    """`fine` is judged with the bank it would be served with, and handed to `fit` with that cap."""
    extract, _ = _extractor({STANDARD: 0.0, "fine": 6.0})
    choice = choose_features(extract, IS_ANOMALOUS, True, FitSettings(), seed=0)
    assert choice.name == "fine" and choice.settings.max_bank == FINE_BANK
    assert choice.fold_banks is not None
    assert {len(fold.bank) for fold in choice.fold_banks.banks} == {FINE_BANK}
    capped = feature_choice.separation(_oof_scores(choice.features, choice.settings), IS_ANOMALOUS)
    uncapped = feature_choice.separation(_oof_scores(choice.features), IS_ANOMALOUS)
    assert choice.details["separation"]["fine"] == round(capped, 4) != round(uncapped, 4)
    fitted = fit(choice.features, IS_ANOMALOUS, None, 0, choice.settings, 0, fold_banks=choice.fold_banks)
    assert len(fitted.bank) == FINE_BANK
    # A caller's smaller cap is never raised by the candidate's.
    assert CANDIDATES["fine"].fit_settings(FitSettings(max_bank=3)).max_bank == 3


@pytest.mark.parametrize(
    ("classification", "settings", "anomalous", "reason"),
    [
        (False, FitSettings(), ANOMALOUS, "segmentation"),
        (True, FitSettings(supervised=False), ANOMALOUS, "--no-head"),
        (True, FitSettings(), feature_choice.MIN_ANOMALOUS - 1, "anomalous training images"),
    ],
)
def test_segmentation_plain_scoring_and_few_anomalies_keep_the_standard_features_unmeasured(
    classification: bool, settings: FitSettings, anomalous: int, reason: str
) -> None:
    extract, calls = _extractor({STANDARD: 0.0, "fine": 6.0})
    labels = np.arange(COUNT) >= COUNT - anomalous
    choice = choose_features(extract, labels, classification, settings, seed=0)
    assert choice.name == STANDARD and calls == [STANDARD]
    assert reason in str(choice.details["reason"]) and "separation" not in choice.details


def test_training_records_the_choice_and_serves_the_chosen_features(
    synthetic: SyntheticData, tmp_path: Path
) -> None:
    result = train(small_config(synthetic.cls_train, tmp_path / "model", features=None, evaluate=False))
    features = load(result.package.directory).manifest.provenance["features"]
    choice = features["choice"]
    assert set(choice["separation"]) == set(CANDIDATES)
    chosen = CANDIDATES[choice["chosen"]]
    assert (features["long_side"], features["aggregate"]) == (
        chosen.features.long_side,
        chosen.features.aggregate,
    )
    assert result.graph.features.config == chosen.features  # the exported graph extracts what was chosen
    assert choice["candidates"]["fine"]["max_bank"] == FINE_BANK


def test_a_requested_candidates_bank_cap_bounds_the_served_bank(
    synthetic: SyntheticData, tmp_path: Path
) -> None:
    """`--features fine` gets fine's bank cap too: the exported graph holds that many patches."""
    requested = Candidate(FeatureConfig(long_side=192), max_bank=7)
    result = train(small_config(synthetic.cls_train, tmp_path / "model", features=requested, evaluate=False))
    assert result.details["bank_size"] == 7 and result.graph.bank.shape[0] == 7
