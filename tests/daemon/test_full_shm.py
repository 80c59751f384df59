"""A full /dev/shm, for real: the agent runs in a private mount namespace whose /dev/shm is a small
tmpfs that `full_shm_setup` filled before the agent started (needs CAP_SYS_ADMIN: skipped otherwise).

A server-side shortage is RESOURCE_EXHAUSTED with a message that names it (it was INTERNAL), and a
never-written segment reads the same, zeros, whether frames are read in place or copied (in place it
was INVALID_ARGUMENT "shrank while the agent read it": nothing shrank, its pages could not be mapped).
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import grpc
import numpy as np
import pytest

from edge_agent.imaging import inplace
from edge_agent.inference import Predictor
from edge_agent.protocol import edge_agent_pb2 as pb
from tests.daemon.full_shm_setup import BLANK, FRAME, MASK, SIZE
from tests.daemon.helpers import HEIGHT, WIDTH, SpawnedAgent, code_of, detect_request, normal_image

pytestmark = pytest.mark.timeout(300)
MOUNT = "mount -t tmpfs -o size=1m,mode=1777 tmpfs /dev/shm"


def _namespaces_allowed() -> str:
    if shutil.which("unshare") is None:
        return "no unshare(1) on this machine"
    probe = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", MOUNT], capture_output=True, text=True
    )
    return "" if probe.returncode == 0 else f"cannot mount a private tmpfs here: {probe.stderr.strip()}"


SKIP_REASON = _namespaces_allowed()
needs_namespace = pytest.mark.skipif(bool(SKIP_REASON), reason=SKIP_REASON or "-")


def full_shm_agent(packages, *args: str) -> tuple[SpawnedAgent, Path]:
    workdir = Path(tempfile.mkdtemp(prefix="ea-full-", dir="/tmp"))
    setup = f"{shlex.quote(sys.executable)} -m tests.daemon.full_shm_setup"
    wrap = ("unshare", "-m", "--propagation", "private", "sh", "-c", f'{MOUNT} && {setup} && exec "$@"', "sh")
    agent = SpawnedAgent(workdir, *args, wrap=wrap)
    try:
        shutil.copytree(packages.classification, agent.models_dir / "cls")
        shutil.copytree(packages.segmentation, agent.models_dir / "seg")
        agent.wait_ready()
        assert "/dev/shm is full" in agent.log(), agent.log()
        for name in ("cls", "seg"):
            agent.client.start_model(name, wait=True)
    except BaseException:
        agent.stop()
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    return agent, workdir


@pytest.fixture(params=["in_place", "copied"])
def full_agent(request, packages):
    if request.param == "in_place" and not inplace.available():
        pytest.skip(f"the SIGBUS guard is {inplace.UNAVAILABLE_REASON}")
    agent, workdir = full_shm_agent(packages, *(["--copy-frames"] if request.param == "copied" else []))
    assert f"frames={request.param}" in agent.log()
    yield agent
    assert agent.stop() == 0, agent.log()
    shutil.rmtree(workdir, ignore_errors=True)


def shm_request(model: str, name: str, mask: str | None = None) -> pb.DetectAnomaliesRequest:
    request = detect_request(
        model, normal_image(), shared_memory_handle=pb.SharedMemoryHandle(name=name, size=SIZE)
    )
    if mask is not None:
        request.anomaly_mask_params.shared_memory_handle.CopyFrom(pb.SharedMemoryHandle(name=mask, size=SIZE))
    return request


@needs_namespace
def test_mask_into_a_full_dev_shm_is_resource_exhausted(full_agent):
    code, details = code_of(lambda: full_agent.client.stub.DetectAnomalies(shm_request("seg", FRAME, MASK)))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED, details
    assert "/dev/shm is full" in details and "cannot write the mask" in details
    # The same frame with the mask inline is fine: only the mask's pages were missing.
    result = full_agent.client.stub.DetectAnomalies(shm_request("seg", FRAME)).detect_anomaly_result
    assert result.is_anomalous and result.anomaly_mask.byte_data
    assert "event=internal_error" not in full_agent.log()


@needs_namespace
def test_never_written_segment_on_a_full_dev_shm_reads_as_zeros(full_agent, packages):
    zeros = Predictor.open(packages.classification).predict(np.zeros((HEIGHT, WIDTH, 3), np.uint8))
    for _ in range(3):  # each time: the mapping faults, the frame is read again by copy
        result = full_agent.client.stub.DetectAnomalies(shm_request("cls", BLANK)).detect_anomaly_result
        assert result.is_anomalous == zeros.is_anomalous
        assert result.anomaly_score == pytest.approx(zeros.anomaly_score, abs=1e-6)
    assert full_agent.proc.poll() is None
