"""Shared-memory input as deployed clients use it: big reused segments, offsets, misbehaving owners."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import grpc
import numpy as np
import pytest

from edge_agent.client import SharedMemoryBuffer
from edge_agent.imaging import inplace
from edge_agent.protocol import edge_agent_pb2 as pb
from tests.conftest import REPO
from tests.daemon.helpers import HEIGHT, WIDTH, anomalous_image, code_of, detect_request, normal_image

pytestmark = pytest.mark.timeout(180)
SIZE = WIDTH * HEIGHT * 3


@pytest.fixture(scope="module")
def agent(shared_agent, packages):
    shared_agent.add_model("shm-cls", packages.classification)
    shared_agent.client.start_model("shm-cls", wait=True)
    return shared_agent


def detect_at(agent, name: str, offset: int, size: int = SIZE):
    request = detect_request(
        "shm-cls",
        normal_image(),
        shared_memory_handle=pb.SharedMemoryHandle(name=name, size=size, offset=offset),
    )
    return agent.client.stub.DetectAnomalies(request).detect_anomaly_result


def test_one_big_segment_holds_several_frames_at_offsets(agent):
    offsets = {"normal": 0, "anomalous": SIZE + 17}
    with SharedMemoryBuffer.create(10 * SIZE) as shm:
        shm.write(normal_image(), offsets["normal"])
        shm.write(anomalous_image(), offsets["anomalous"])
        assert detect_at(agent, shm.name, offsets["normal"]).is_anomalous is False
        assert detect_at(agent, shm.name, offsets["anomalous"]).is_anomalous is True


def test_names_work_with_and_without_the_leading_slash(agent):
    with SharedMemoryBuffer.create(SIZE) as shm:
        shm.write(anomalous_image())
        assert detect_at(agent, shm.name, 0).is_anomalous
        assert detect_at(agent, shm.name.lstrip("/"), 0).is_anomalous


def test_reused_segment_follows_new_frames_without_leaking(agent):
    with SharedMemoryBuffer.create(SIZE) as shm:
        detect_at_start = None
        for frame in range(60):
            anomalous = frame % 2 == 1
            shm.write(anomalous_image() if anomalous else normal_image())
            assert detect_at(agent, shm.name, 0).is_anomalous is anomalous
            if frame == 10:
                detect_at_start = agent.open_fds()
        # The cache reuses one descriptor; gRPC and the folder poller open short-lived ones meanwhile.
        assert agent.open_fds() <= detect_at_start + 2


def test_segment_recreated_under_the_same_name_is_reopened(agent):
    shm = SharedMemoryBuffer.create(SIZE)
    name = shm.name
    shm.write(normal_image())
    assert detect_at(agent, name, 0).is_anomalous is False
    shm.close()
    again = SharedMemoryBuffer.create(SIZE, name=name)
    try:
        again.write(anomalous_image())
        assert detect_at(agent, name, 0).is_anomalous is True
    finally:
        again.close()
    code, details = code_of(lambda: detect_at(agent, name, 0))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "no shared memory segment" in details


def test_agent_never_writes_resizes_or_unlinks_an_input_segment(agent):
    with SharedMemoryBuffer.create(2 * SIZE) as shm:
        shm.write(anomalous_image(), SIZE)
        before = shm.read(2 * SIZE)
        detect_at(agent, shm.name, SIZE)
        path = f"/dev/shm/{shm.name.lstrip('/')}"
        assert os.stat(path).st_size == 2 * SIZE
        assert shm.read(2 * SIZE) == before


def test_segment_shrunk_before_the_call_is_invalid_argument(agent):
    with SharedMemoryBuffer.create(SIZE) as shm:
        os.truncate(f"/dev/shm/{shm.name.lstrip('/')}", SIZE // 2)
        code, details = code_of(lambda: detect_at(agent, shm.name, 0))
        assert code == grpc.StatusCode.INVALID_ARGUMENT and f"holds {SIZE // 2} bytes" in details
    assert agent.client.detect("shm-cls", anomalous_image()).is_anomalous


def truncate_during_calls(agent) -> None:
    """Another process shrinks and regrows the segment as fast as it can while we detect."""
    with SharedMemoryBuffer.create(SIZE) as shm:
        shm.write(anomalous_image())
        peer = subprocess.Popen(
            [sys.executable, "-m", "tests.daemon.shm_peer", shm.name, str(SIZE), "4"],
            cwd=REPO,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert peer.stdout.readline().strip() == "ready"
        codes = {"OK": 0, "INVALID_ARGUMENT": 0}
        while peer.poll() is None:
            try:
                result = detect_at(agent, shm.name, 0)
                # A read between truncate and regrow sees zeros past the cut: never a crash.
                assert 0.0 <= result.anomaly_score <= 1.0
                codes["OK"] += 1
            except grpc.RpcError as exc:
                assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT, exc.details()
                codes["INVALID_ARGUMENT"] += 1
        assert peer.wait() == 0
        assert agent.proc.poll() is None, agent.log()
        assert sum(codes.values()) > 20 and codes["INVALID_ARGUMENT"] > 0, codes
    assert agent.client.detect("shm-cls", anomalous_image()).is_anomalous


def test_segment_truncated_during_calls_never_crashes_the_agent(agent):
    """Frames read in place: reads past the cut hit the SIGBUS guard's zero pages, never a crash."""
    assert "frames=in_place" in agent.log() or not inplace.available()
    truncate_during_calls(agent)


def test_segment_truncated_during_calls_with_copied_frames(start_agent, packages):
    agent = start_agent("--copy-frames")
    assert "frames=copied" in agent.log()
    agent.add_model("shm-cls", packages.classification)
    agent.client.start_model("shm-cls", wait=True)
    truncate_during_calls(agent)


def test_many_distinct_segment_names_keep_open_descriptors_bounded(agent):
    baseline = agent.open_fds()
    for _ in range(100):
        with SharedMemoryBuffer.create(SIZE) as shm:
            shm.write(normal_image())
            detect_at(agent, shm.name, 0)
    assert agent.open_fds() <= baseline + 64  # the cache holds at most 64 descriptors


def test_symlink_in_dev_shm_is_refused(agent, tmp_path):
    target = tmp_path / "secret"
    target.write_bytes(np.zeros(SIZE, np.uint8).tobytes())
    link = f"/dev/shm/edge-agent-link-{os.getpid()}"
    os.symlink(target, link)
    try:
        code, details = code_of(lambda: detect_at(agent, os.path.basename(link), 0))
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "cannot open segment" in details
    finally:
        os.unlink(link)


def test_agent_lets_go_of_segments_their_owner_unlinked(agent):
    """A client that removes its segment must get its memory back: the agent keeps no descriptor."""

    def deleted_segments() -> list[str]:
        links = (
            os.readlink(f"/proc/{agent.proc.pid}/fd/{fd}") for fd in os.listdir(f"/proc/{agent.proc.pid}/fd")
        )
        return [link for link in links if link.startswith("/dev/shm/") and link.endswith("(deleted)")]

    def mapped(name: str) -> bool:
        with open(f"/proc/{agent.proc.pid}/maps") as maps:
            return any(f"/dev/shm/{name}" in line for line in maps)

    shm = SharedMemoryBuffer.create(SIZE)
    shm.write(normal_image())
    assert detect_at(agent, shm.name, 0).is_anomalous is False
    assert mapped(shm.name.lstrip("/")) == inplace.available()  # the frame was read in place
    shm.close()  # unlinks it
    deadline = time.monotonic() + 10
    while deleted_segments() or mapped(shm.name.lstrip("/")):
        assert time.monotonic() < deadline, f"the agent still holds {deleted_segments()} or a mapping"
        time.sleep(0.1)
