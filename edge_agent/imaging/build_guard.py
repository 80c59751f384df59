"""Compile the SIGBUS guard (`_mapguard.c`, shipped in the package) next to where it is installed.

Why not a setuptools extension: that would make the distributed wheel specific to one CPU
architecture and one Python version, while the Greengrass agent component ships one wheel for
x86-64 and aarch64 devices of any Python >= 3.10. So the wheel stays pure, and the guard is built on
the machine that runs the agent: by `scripts/setup.sh`, and by the agent component's install step
(`edge-agent build-guard`). Where it cannot be built (no C compiler or Python headers), the agent
copies frames instead, and says so in its `event=ready` log line.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sysconfig
import tempfile
from pathlib import Path

from edge_agent.errors import AgentError
from edge_agent.imaging.inplace import SOURCE, source_digest

FLAGS = ["-shared", "-fPIC", "-O2", "-std=c11", "-Wall", "-Wextra"]


class GuardBuildError(AgentError):
    """The guard cannot be compiled here; the agent will copy frames."""


def target_path(directory: Path | None = None) -> Path:
    suffix = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
    return (directory or SOURCE.parent) / f"_mapguard{suffix}"


def compiler() -> list[str]:
    """$CC, else the compiler Python was built with, else cc: the first that exists."""
    candidates = [os.environ.get("CC"), sysconfig.get_config_var("CC"), "cc", "gcc"]
    for candidate in candidates:
        if candidate:
            words = shlex.split(candidate)
            if words and shutil.which(words[0]):
                return words
    raise GuardBuildError("no C compiler found (set CC, or install gcc)")


def build(directory: Path | None = None) -> Path:
    """Compile the guard into `directory` (default: this package); return the module's path.

    Written under a temporary name and renamed, so a running agent never imports half a file. A
    failed build removes an older one, so that the agent cannot load a guard of another version.
    """
    target = target_path(directory)
    include = sysconfig.get_paths()["include"]
    try:
        if not (Path(include) / "Python.h").is_file():
            raise GuardBuildError(f"Python headers not found in {include} (install python3-dev)")
        with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
            built = Path(scratch) / target.name
            command = [
                *compiler(),
                *FLAGS,
                f'-DGUARD_SOURCE_SHA256="{source_digest()}"',
                f"-I{include}",
                str(SOURCE),
                "-o",
                str(built),
            ]
            result = subprocess.run(command, capture_output=True, text=True, check=False)
            if result.returncode != 0:
                raise GuardBuildError(f"{shlex.join(command)} failed:\n{result.stderr.strip()}")
            os.replace(built, target)
    except GuardBuildError:
        target.unlink(missing_ok=True)
        raise
    except OSError as exc:
        raise GuardBuildError(f"cannot write the guard into {target.parent}: {exc.strerror}") from None
    return target
