"""The target catalogue: devices, platforms, compiler-option schemas and recipe templates.

The data lives in the top-level `packaging/` folder (data only, never Python, so it cannot shadow
the `packaging` library). `locate_catalogue` is the one place that finds it; everything else
receives a `Catalogue`.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_agent.errors import AgentError

CATALOGUE_ENV = "EDGE_AGENT_PACKAGING_DIR"
TARGETS_FILE = "targets.json"
MODEL_RECIPE_TEMPLATE = "templates/model-component.json"
# Where `pip install` puts the data-files entry of pyproject.toml (see docs/packaging.md).
INSTALLED_SUBDIR = Path("share") / "anomaly-edge-agent" / "packaging"


class CatalogueError(AgentError):
    """The packaging catalogue is missing or malformed."""


def locate_catalogue() -> Path:
    """Find the `packaging/` data folder: $EDGE_AGENT_PACKAGING_DIR, the source tree, or the install prefix."""
    override = os.environ.get(CATALOGUE_ENV)
    if override:
        if (Path(override) / TARGETS_FILE).is_file():
            return Path(override)
        raise CatalogueError(f"${CATALOGUE_ENV} is {override!r} but holds no {TARGETS_FILE}")
    candidates = [Path(__file__).resolve().parents[2] / "packaging", Path(sys.prefix) / INSTALLED_SUBDIR]
    for candidate in candidates:
        if (candidate / TARGETS_FILE).is_file():
            return candidate
    raise CatalogueError(
        "cannot find the packaging catalogue (packaging/targets.json); looked in "
        f"{[str(c) for c in candidates]}. Set ${CATALOGUE_ENV} to the packaging/ folder of a checkout"
    )


@dataclass(frozen=True)
class Catalogue:
    """Parsed `targets.json` plus the folder it came from (for templates)."""

    root: Path
    data: dict[str, Any]

    @property
    def devices(self) -> dict[str, dict[str, Any]]:
        return self.data["devices"]

    @property
    def os_names(self) -> dict[str, str]:
        return self.data["platforms"]["os"]

    @property
    def arch_names(self) -> dict[str, str]:
        return self.data["platforms"]["arch"]

    @property
    def accelerators(self) -> list[str]:
        return self.data["platforms"]["accelerators"]

    def option_schema(self, accelerator: str | None) -> dict[str, dict[str, Any]]:
        return self.data["compiler_options"][accelerator or "CPU"]

    @property
    def option_aliases(self) -> dict[str, str]:
        return self.data.get("option_aliases", {})

    def cpu_defaults(self, arch: str) -> dict[str, Any]:
        return dict(self.data.get("cpu_defaults", {}).get(arch, {}))

    def cpu_models(self, arch: str) -> dict[str, list[str]]:
        return self.data.get("cpu_models", {}).get(arch, {})

    @property
    def cpu_flag_names(self) -> dict[str, str]:
        return self.data.get("cpu_flag_names", {})

    @property
    def agent_component(self) -> str:
        return self.data["agent_component"]["name"]

    @property
    def agent_version_requirement(self) -> str:
        return self.data["agent_component"]["version_requirement"]

    def model_recipe_template(self) -> dict[str, Any]:
        path = self.root / MODEL_RECIPE_TEMPLATE
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise CatalogueError(f"cannot read recipe template {path}: {exc}") from None


def load_catalogue(root: Path | None = None) -> Catalogue:
    folder = root or locate_catalogue()
    path = folder / TARGETS_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise CatalogueError(f"cannot read target catalogue {path}: {exc}") from None
    for key in ("devices", "platforms", "compiler_options", "agent_component"):
        if key not in data:
            raise CatalogueError(f"target catalogue {path} lacks the section {key!r}")
    return Catalogue(root=folder, data=data)
