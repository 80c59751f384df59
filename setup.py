"""The one compiled part: the SIGBUS guard that lets the agent read client frames in place.

Optional: where it cannot be built, the agent copies frames out of shared memory instead
(docs/agent.md, "Shared memory"). Everything else is in pyproject.toml.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "edge_agent.imaging._mapguard",
            ["edge_agent/imaging/_mapguard.c"],
            extra_compile_args=["-std=c11", "-O2", "-Wall", "-Wextra"],
            optional=True,
        )
    ]
)
