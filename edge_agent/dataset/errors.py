"""The one error a dataset import or check raises."""

from __future__ import annotations

from edge_agent.errors import InvalidInputError


class DatasetError(InvalidInputError):
    """A dataset, manifest or image breaks a rule of the guide; the message names the file and the fix."""
