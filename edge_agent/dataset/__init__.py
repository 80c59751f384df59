"""Lookout for Vision datasets: records (types.py), importers, validation and splitting.

Public API: `load_dataset`, `split_dataset`, `validate`, `convert_csv`, `write_manifest`,
`read_label_indices`, `DatasetError`,
`Dataset`, `Sample`. Nothing here imports torch.
"""

from edge_agent.dataset.csv_manifest import convert_csv
from edge_agent.dataset.errors import DatasetError
from edge_agent.dataset.images import read_label_indices
from edge_agent.dataset.loader import load_dataset
from edge_agent.dataset.manifest import write_manifest
from edge_agent.dataset.split import split_dataset
from edge_agent.dataset.types import Dataset, Sample
from edge_agent.dataset.validation import validate

__all__ = [
    "Dataset",
    "DatasetError",
    "Sample",
    "convert_csv",
    "load_dataset",
    "read_label_indices",
    "split_dataset",
    "validate",
    "write_manifest",
]
