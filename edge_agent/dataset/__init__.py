"""Lookout for Vision datasets: records (types.py) and their importers."""

from edge_agent.dataset.types import Dataset, Sample

__all__ = ["Dataset", "Sample"]
