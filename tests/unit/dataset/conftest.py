"""Fixtures of the dataset tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from dataset_files import DatasetWriter


@pytest.fixture
def writer(tmp_path: Path) -> DatasetWriter:
    return DatasetWriter(tmp_path / "data")
