"""ModelRegistry in-process: the interleavings a daemon test cannot force (races, drains, removals)."""

from __future__ import annotations

import os
import resource
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from edge_agent.errors import ModelNotFoundError, ModelStoppedError, OverloadedError, WrongStateError
from edge_agent.model_package import load
from edge_agent.protocol.edge_agent_pb2 import FAILED, RUNNING, STARTING, STOPPED
from edge_agent.registry import ModelRegistry, RegistryConfig
from edge_agent.testing.onnx_models import bright_blob_package, heavy_package


@pytest.fixture(scope="module")
def blob(tmp_path_factory) -> Path:
    return bright_blob_package(tmp_path_factory.mktemp("blob") / "p").directory


@pytest.fixture(scope="module")
def heavy(tmp_path_factory) -> Path:
    return heavy_package(
        tmp_path_factory.mktemp("heavy") / "p", 256, 256, side=256, layers=8, channels=48
    ).directory


def wait_status(registry: ModelRegistry, name: str, status: int, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while registry.describe(name).status != status:
        assert time.monotonic() < deadline, registry.describe(name)
        time.sleep(0.01)


def detect(registry: ModelRegistry, name: str, image: np.ndarray):
    height, width = image.shape[:2]
    with registry.inference(name, width, height) as slot:
        return slot.predictor.predict(image)


def start_both_at_once(registry: ModelRegistry, names: tuple[str, str]) -> list[str]:
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def start(name: str) -> None:
        barrier.wait()
        try:
            registry.start(name)
            outcomes.append("started")
        except OverloadedError:
            outcomes.append("refused")

    threads = [threading.Thread(target=start, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sorted(outcomes)


def test_concurrent_starts_never_overcommit_the_memory_budget(tmp_path, blob):
    one = load(blob)
    need = 2 * one.graph_path.stat().st_size + 5 * one.manifest.input_bytes + (16 << 20)
    for attempt in range(20):
        models = tmp_path / f"m{attempt}"
        for name in ("a", "b"):
            shutil.copytree(blob, models / name)
        registry = ModelRegistry(RegistryConfig(memory_limit_bytes=need + need // 2), models_dir=models)
        assert start_both_at_once(registry, ("a", "b")) == ["refused", "started"]
        registry.close()


def test_a_stale_folder_listing_never_undoes_a_newer_one(tmp_path, blob):
    models = tmp_path / "models"
    models.mkdir()
    registry = ModelRegistry(RegistryConfig(), models_dir=models)
    listed_old = threading.Event()
    release = threading.Event()
    real_list = registry._list_models_dir
    calls = []

    def slow_first_listing() -> dict[str, Path]:
        result = real_list()
        calls.append(sorted(result))
        if len(calls) == 1:  # the poller's scan: taken before the component is installed
            listed_old.set()
            release.wait(5)
        return result

    registry._list_models_dir = slow_first_listing  # type: ignore[method-assign]
    poller = threading.Thread(target=registry.sync)
    poller.start()
    assert listed_old.wait(5)
    shutil.copytree(blob, models / "cam")  # Greengrass installs the component
    client = threading.Thread(target=registry.sync)  # a client's StartModel syncs first
    client.start()
    time.sleep(0.1)
    release.set()
    poller.join()
    client.join()
    assert calls == [[], ["cam"]]
    registry.start("cam")
    wait_status(registry, "cam", RUNNING)
    registry.close()


def test_stop_waits_for_running_requests_and_refuses_queued_ones(tmp_path, heavy):
    registry = ModelRegistry(RegistryConfig(concurrency=1, queue_depth=4), static_models={"h": heavy})
    registry.start("h")
    wait_status(registry, "h", RUNNING)
    image = np.random.default_rng(0).integers(0, 255, (256, 256, 3), dtype=np.uint8)
    results: list[str] = []

    def call() -> None:
        try:
            detect(registry, "h", image)
            results.append("ok")
        except ModelStoppedError:
            results.append("stopped")
        except WrongStateError:
            results.append("not running")

    callers = [threading.Thread(target=call) for _ in range(4)]
    for t in callers:
        t.start()
    time.sleep(0.02)
    assert registry.stop("h") == STOPPED
    stopped_at = len(results)
    for t in callers:
        t.join()
    assert set(results) <= {"ok", "stopped", "not running"} and len(results) == 4
    assert results.count("ok") <= stopped_at  # every success finished before StopModel returned
    registry.close()


def test_a_failure_in_the_last_load_step_ends_failed(tmp_path, blob, monkeypatch):
    import edge_agent.registry as registry_module

    def no_memory(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(registry_module, "InferenceGate", no_memory)
    registry = ModelRegistry(RegistryConfig(), static_models={"m": blob})
    registry.start("m")
    wait_status(registry, "m", FAILED)
    assert "out of memory" in registry.describe("m").status_message
    monkeypatch.undo()
    registry.start("m")  # FAILED -> STARTING is allowed: a retry
    wait_status(registry, "m", RUNNING)
    registry.close()


def test_a_model_removed_while_loading_is_forgotten_and_its_load_discarded(tmp_path, heavy):
    models = tmp_path / "models"
    shutil.copytree(heavy, models / "h")
    registry = ModelRegistry(RegistryConfig(), models_dir=models)
    assert registry.start("h") == STARTING
    shutil.rmtree(models / "h")
    registry.sync()
    assert registry.list() == []
    shutil.copytree(heavy, models / "h")
    registry.sync()
    time.sleep(1.0)  # the first load, if it were not discarded, would have made "h" RUNNING by now
    assert registry.describe("h").status == STOPPED
    registry.close()


def test_a_models_folder_that_cannot_be_read_now_leaves_every_model_as_it_was(tmp_path, blob):
    """Out of file descriptors (a client flooding the socket): the listing fails, models keep running."""
    models = tmp_path / "models"
    shutil.copytree(blob, models / "cam")
    registry = ModelRegistry(RegistryConfig(), models_dir=models)
    registry.start("cam")
    wait_status(registry, "cam", RUNNING)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (3, hard))  # no new descriptor can be opened
    try:
        registry.sync()
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert [(m.name, m.status) for m in registry.list()] == [("cam", RUNNING)]
    shutil.rmtree(models / "cam")  # a real removal still stops and forgets it
    registry.sync()
    assert registry.list() == []
    registry.close()


def test_broken_packages_never_break_listing_the_others(tmp_path, blob):
    models = tmp_path / "models"
    shutil.copytree(blob, models / "good")
    (models / "fifo").mkdir()
    os.mkfifo(models / "fifo" / "manifest.json")  # would block a plain open() forever
    (models / "binary").mkdir()
    (models / "binary" / "manifest.json").write_bytes(b"\xff\xfe{\x00")
    (models / "zero").mkdir()
    (models / "zero" / "manifest.json").symlink_to("/dev/zero")  # endless bytes
    (models / "huge").mkdir()
    with (models / "huge" / "manifest.json").open("wb") as handle:
        handle.truncate(64 << 20)  # a 64 MiB (sparse) regular file
    registry = ModelRegistry(RegistryConfig(), models_dir=models)
    listed = {m.name: m for m in registry.list()}
    assert sorted(listed) == ["binary", "fifo", "good", "huge", "zero"]
    assert listed["good"].arn.startswith("arn:aws:lookoutvision")
    assert "not a regular file" in listed["fifo"].status_message
    assert "not UTF-8" in listed["binary"].status_message
    assert "not a regular file" in listed["zero"].status_message
    assert "a manifest is at most 1048576" in listed["huge"].status_message
    registry.start("fifo")
    wait_status(registry, "fifo", FAILED)
    registry.start("good")
    wait_status(registry, "good", RUNNING)
    registry.close()


def test_a_start_that_raced_a_removal_is_refused_and_leaves_no_hidden_model(tmp_path, blob):
    """StartModel found the entry, then the component was removed and redeployed under its name."""
    models = tmp_path / "models"
    shutil.copytree(blob, models / "cam")
    registry = ModelRegistry(RegistryConfig(), models_dir=models)
    outcome: list[str] = []

    def start() -> None:
        try:
            registry.start("cam")
            outcome.append("started")
        except ModelNotFoundError:
            outcome.append("not found")

    with registry._admission_lock:  # where a concurrent StartModel would hold it
        starter = threading.Thread(target=start)
        starter.start()
        time.sleep(0.2)  # the starter has its entry and waits for admission
        shutil.rmtree(models / "cam")
        registry.sync()
        shutil.copytree(blob, models / "cam")
        registry.sync()
    starter.join(10)
    assert outcome == ["not found"]
    time.sleep(0.5)
    assert registry.describe("cam").status == STOPPED
    registry.close()
