"""Model packaging jobs: turn a model package into a Greengrass V2 model component.

`start_job` validates a `PackagingRequest`, compiles the model for its target (compile_cpu,
nvidia), zips it with target.json, renders the recipe from the catalogue in `packaging/`, writes
both to a folder or S3 and records the job in SQLite (jobs). `device` holds the lifecycle steps
the component runs on the device; names are imported lazily so those steps stay light.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "GreengrassConfiguration": "edge_agent.packager.config",
    "PackagingSpec": "edge_agent.packager.config",
    "PackagingRequest": "edge_agent.packager.job",
    "start_job": "edge_agent.packager.job",
    "JobRecord": "edge_agent.packager.jobs",
    "JobStore": "edge_agent.packager.jobs",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'edge_agent.packager' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
