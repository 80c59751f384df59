"""The `project` and `model_version` of a model component, as CloudWatch's ProjectName and ModelVersion.

From the package manifest: `model_arn` `arn:aws:lookoutvision:<region>:<account>:model/<project>/<version>`
(what `edge-agent train` writes, and what packages converted from Lookout for Vision carry). A
manifest without such an ARN: the project is the model component's name and the version is the
manifest's `model_version`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple

from edge_agent.model_package import load

_ARN = re.compile(r":model/(?P<project>[^/]+)/(?P<version>[^/]+)$")


class ModelLabels(NamedTuple):
    model_component: str
    project: str
    model_version: str


def labels_from(model_component: str, model_arn: str, manifest_version: int) -> ModelLabels:
    match = _ARN.search(model_arn)
    if match:
        return ModelLabels(model_component, match["project"], match["version"])
    return ModelLabels(model_component, model_component, str(manifest_version))


def read_labels(model_component: str, directory: Path) -> ModelLabels:
    """Labels from the package in `directory`; a package that cannot be read yet gets the fallback."""
    try:
        manifest = load(directory).manifest
    except Exception:
        return ModelLabels(model_component, model_component, "")
    return labels_from(model_component, manifest.model_arn, manifest.model_version)
