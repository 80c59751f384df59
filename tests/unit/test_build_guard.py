"""`edge-agent build-guard`: the guard compiled from the package's own source, and its failures."""

from __future__ import annotations

import importlib.util
import shutil

import pytest

from edge_agent.cli import main
from edge_agent.imaging import build_guard

needs_cc = pytest.mark.skipif(
    shutil.which("cc") is None and shutil.which("gcc") is None, reason="no C compiler"
)


@needs_cc
def test_the_guard_builds_into_a_directory_and_loads(tmp_path):
    path = build_guard.build(tmp_path)
    assert path.parent == tmp_path and path.name.startswith("_mapguard") and path.stat().st_size > 0
    assert not [p for p in tmp_path.iterdir() if p != path]  # no temporary left behind
    spec = importlib.util.spec_from_file_location("_mapguard", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert {"install", "map", "unmap", "faulted"} <= set(dir(module))


def test_a_compiler_that_fails_is_reported_with_its_command(tmp_path, monkeypatch):
    monkeypatch.setenv("CC", "false")
    with pytest.raises(build_guard.GuardBuildError, match=r"false .*_mapguard\.c.* failed"):
        build_guard.build(tmp_path)
    assert list(tmp_path.iterdir()) == []


@needs_cc
def test_cli_if_missing_leaves_a_built_guard_alone(capsys):
    if importlib.util.find_spec("edge_agent.imaging._mapguard") is None:
        pytest.skip("the guard is not built in this checkout")
    assert main(["build-guard", "--if-missing"]) == 0
    assert "already built" in capsys.readouterr().out
