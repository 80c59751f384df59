"""Many clients at once, overload, and control calls that stay answerable while models are busy."""

from __future__ import annotations

import multiprocessing
import threading
from concurrent.futures import ThreadPoolExecutor

import grpc
import numpy as np
import pytest

from edge_agent.protocol import edge_agent_pb2 as pb
from tests.daemon.concurrent_client import run_client

pytestmark = pytest.mark.timeout(240)


def test_eight_client_processes_get_correct_results(start_agent, packages):
    agent = start_agent("--concurrency", "2", "--queue-depth", "32")
    agent.add_model("cls", packages.classification)
    agent.add_model("seg", packages.segmentation)
    agent.client.start_model("cls", wait=True)
    agent.client.start_model("seg", wait=True)
    jobs = [(agent.socket, "cls" if i % 2 else "seg", 25, i % 4 != 3) for i in range(8)]
    with multiprocessing.get_context("spawn").Pool(8) as pool:
        results = pool.starmap(run_client, jobs)
    assert results == [(25, 25)] * 8
    assert agent.proc.poll() is None


def test_overload_answers_resource_exhausted_at_once_and_control_calls_stay_fast(start_agent, packages):
    agent = start_agent("--concurrency", "1", "--queue-depth", "1")
    agent.add_model("heavy", packages.heavy)
    agent.add_model("other", packages.classification)
    agent.client.start_model("heavy", wait=True)
    agent.client.start_model("other", wait=True)
    image = np.random.default_rng(0).integers(0, 255, (256, 256, 3), dtype=np.uint8)
    codes: list[str] = []
    refusals: list[str] = []
    lock = threading.Lock()

    def call() -> None:
        try:
            agent.client.detect("heavy", image)
            code = "OK"
        except grpc.RpcError as exc:
            code = exc.code().name
            refusals.append(exc.details())
        with lock:
            codes.append(code)

    with ThreadPoolExecutor(16) as pool:
        for _ in range(48):
            pool.submit(call)
        for _ in range(5):
            # A deadline, not a benchmark: the control path must not wait behind inference.
            models = agent.client.stub.ListModels(pb.ListModelsRequest(), timeout=5)
            assert {m.model_component for m in models.models} == {"heavy", "other"}
            assert agent.client.detect("other", np.full((96, 128, 3), 100, np.uint8)).is_anomalous is False
    assert set(codes) <= {"OK", "RESOURCE_EXHAUSTED"}, codes
    assert codes.count("OK") >= 2 and codes.count("RESOURCE_EXHAUSTED") >= 1, codes
    assert all("retry later" in message and "'heavy'" in message for message in refusals), refusals[:3]
    assert agent.client.detect("heavy", image).anomaly_score >= 0.0  # recovers once the burst is over
