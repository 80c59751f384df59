"""Model packaging jobs: turn a model package into a Greengrass V2 model component.

`start_job` validates a `PackagingRequest`, compiles the model for its target (compile_cpu,
nvidia), zips it with target.json, renders the recipe from the catalogue in `packaging/`, writes
both to a folder or S3 and records the job in SQLite (jobs). `device` holds the lifecycle steps
the component runs on the device.
"""

from edge_agent.packager.config import GreengrassConfiguration, PackagingSpec
from edge_agent.packager.job import PackagingRequest, start_job
from edge_agent.packager.jobs import JobRecord, JobStore

__all__ = [
    "GreengrassConfiguration",
    "JobRecord",
    "JobStore",
    "PackagingRequest",
    "PackagingSpec",
    "start_job",
]
