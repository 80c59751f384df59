"""Lookout for Vision datasets: records (types.py), importers, validation and splitting.

Public API: `load_dataset`, `split_dataset`, `validate`, `convert_csv`, `DatasetError`,
`Dataset`, `Sample`. Nothing here imports torch.
"""

from edge_agent.dataset.errors import DatasetError
from edge_agent.dataset.loader import load_dataset
from edge_agent.dataset.split import split_dataset
from edge_agent.dataset.types import Dataset, Sample
from edge_agent.dataset.validation import validate

__all__ = ["Dataset", "DatasetError", "Sample", "load_dataset", "split_dataset", "validate"]
