"""The packaging/ data folder: found from a checkout, an override or an install prefix; never shadows `packaging`."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edge_agent.packager import catalogue as catalogue_module
from edge_agent.packager.catalogue import (
    CATALOGUE_ENV,
    INSTALLED_SUBDIR,
    CatalogueError,
    load_catalogue,
    locate_catalogue,
)

REPO = Path(__file__).resolve().parents[3]


def test_import_packaging_is_still_the_pip_library() -> None:
    """The data folder must not shadow pip's `packaging` (run from the repo root, where it is on sys.path)."""
    code = "import packaging, packaging.version; print(packaging.__file__); print(packaging.version.Version('1.2'))"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    location, version = result.stdout.split()
    assert "site-packages" in location and version == "1.2"
    assert not list((REPO / "packaging").rglob("*.py")) and not (REPO / "packaging" / "__init__.py").exists()


def test_checkout_catalogue_is_found_and_complete() -> None:
    assert locate_catalogue() == REPO / "packaging"
    catalogue = load_catalogue()
    assert catalogue.devices["jetson_xavier"]["compiler_options"]["gpu-code"] == "sm_72"
    assert catalogue.arch_names == {"X86_64": "amd64", "ARM64": "aarch64"}
    assert catalogue.model_recipe_template()["RecipeFormatVersion"] == "2020-01-25"


def test_override_and_install_prefix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(REPO / "packaging", copy)
    monkeypatch.setenv(CATALOGUE_ENV, str(copy))
    assert locate_catalogue() == copy
    monkeypatch.setenv(CATALOGUE_ENV, str(tmp_path / "empty"))
    with pytest.raises(CatalogueError, match=r"holds no targets\.json"):
        locate_catalogue()
    # An installed wheel: no checkout next to the module, data under <prefix>/share/anomaly-edge-agent/packaging.
    monkeypatch.delenv(CATALOGUE_ENV)
    prefix = tmp_path / "prefix"
    shutil.copytree(REPO / "packaging", prefix / INSTALLED_SUBDIR)
    fake_module = tmp_path / "site" / "edge_agent" / "packager" / "catalogue.py"
    monkeypatch.setattr(catalogue_module, "__file__", str(fake_module))
    monkeypatch.setattr(sys, "prefix", str(prefix))
    assert locate_catalogue() == prefix / INSTALLED_SUBDIR
    monkeypatch.setattr(sys, "prefix", str(tmp_path / "nowhere"))
    with pytest.raises(CatalogueError, match="EDGE_AGENT_PACKAGING_DIR"):
        locate_catalogue()
