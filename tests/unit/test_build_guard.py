"""`edge-agent build-guard`: the guard compiled from the package's own source, and its failures."""

from __future__ import annotations

import importlib.util
import shutil

import pytest

from edge_agent.cli import main
from edge_agent.imaging import build_guard, inplace

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
    assert {"install", "map", "unmap", "first_fault"} <= set(dir(module))


def test_a_compiler_that_fails_is_reported_and_removes_an_older_build(tmp_path, monkeypatch):
    build_guard.target_path(tmp_path).write_bytes(b"an older build")
    monkeypatch.setenv("CC", "false")
    with pytest.raises(build_guard.GuardBuildError, match=r"false .*_mapguard\.c.* failed"):
        build_guard.build(tmp_path)
    assert list(tmp_path.iterdir()) == []  # neither the older build nor a temporary is left


@needs_cc
def test_the_built_guard_carries_the_digest_of_its_source(tmp_path):
    spec = importlib.util.spec_from_file_location("_mapguard", build_guard.build(tmp_path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert inplace.source_digest() == module.SOURCE_SHA256


@needs_cc
def test_cli_if_missing_leaves_a_built_guard_alone(capsys):
    if importlib.util.find_spec("edge_agent.imaging._mapguard") is None:
        pytest.skip("the guard is not built in this checkout")
    assert main(["build-guard", "--if-missing"]) == 0
    assert "already built" in capsys.readouterr().out
