"""Defects found by an outside attack (issue 9), each against the real daemon: memory after rejected
large calls, the in-flight budget, descriptor exhaustion, socket squatting, telemetry, log floods,
and the start-up signal race."""

from __future__ import annotations

import os
import re
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc
import pytest

from edge_agent.client import SharedMemoryBuffer
from edge_agent.protocol import edge_agent_pb2 as pb
from tests.daemon.helpers import (
    HEIGHT,
    WIDTH,
    SpawnedAgent,
    anomalous_image,
    code_of,
    detect_request,
    normal_image,
    wait_until,
)

pytestmark = pytest.mark.timeout(300)
SIDE = 4096
LARGE = SIDE * SIDE * 3  # 48 MiB inline


@pytest.fixture
def workdir():
    # Short (a socket path fits in 107 bytes) and reachable by other users where a test needs that.
    path = Path(tempfile.mkdtemp(prefix="ea-h-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def large_inline(model: str) -> pb.DetectAnomaliesRequest:
    return pb.DetectAnomaliesRequest(
        model_component=model, bitmap=pb.Bitmap(width=SIDE, height=SIDE, byte_data=bytes(LARGE))
    )


# 1. Memory -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("metrics", [False, True], ids=["plain", "metrics-interceptor"])
def test_rejected_large_inline_calls_leave_no_memory_behind(workdir, packages, metrics):
    """With the cyclic collector off in the agent, anything a reference cycle keeps stays: before the
    fix each rejected 48 MiB call kept about 96 MiB (8 calls: +750 MiB). With metrics on, the
    observability interceptor's frames are in the abort's traceback too."""
    extra = ["--metrics-address", f"unix://{workdir}/metrics.sock"] if metrics else []
    agent = SpawnedAgent(workdir, *extra, module="tests.daemon.agent_without_gc")
    try:
        shutil.copytree(packages.classification, agent.models_dir / "stopped")
        agent.wait_ready()
        request = large_inline("stopped")
        for code in (grpc.StatusCode.FAILED_PRECONDITION,) * 2:  # warm-up: gRPC's own buffers
            assert code_of(lambda: agent.client.stub.DetectAnomalies(request, timeout=120))[0] == code
        baseline = agent.rss_mib()
        for _ in range(8):
            code, details = code_of(lambda: agent.client.stub.DetectAnomalies(request, timeout=120))
            assert code == grpc.StatusCode.FAILED_PRECONDITION and "is STOPPED" in details
        # Freed when each call ends; the wait only covers the agent finishing its last call.
        assert wait_until(lambda: agent.rss_mib() < baseline + 200, 60), (baseline, agent.rss_mib())
    finally:
        assert agent.stop() == 0, agent.log()


def test_requests_beyond_the_inflight_budget_are_refused_before_parsing(workdir, packages):
    agent = SpawnedAgent(workdir, "--max-inflight-mb", "60")
    try:
        shutil.copytree(packages.classification, agent.models_dir / "stopped")
        agent.wait_ready()
        # 48 MiB fits in 60, over and over: each call gives its bytes back when it ends.
        for _ in range(4):
            code, _ = code_of(lambda: agent.client.stub.DetectAnomalies(large_inline("stopped"), timeout=120))
            assert code == grpc.StatusCode.FAILED_PRECONDITION
    finally:
        assert agent.stop() == 0, agent.log()
    agent = SpawnedAgent(workdir, "--max-inflight-mb", "40").wait_ready()
    try:
        code, details = code_of(
            lambda: agent.client.stub.DetectAnomalies(large_inline("stopped"), timeout=120)
        )
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "--max-inflight-mb 40" in details and "shared memory" in details
        # Small calls are unaffected, and so are control calls.
        assert [m.name for m in agent.client.list_models()] == ["stopped"]
    finally:
        assert agent.stop() == 0, agent.log()


# 6. Out of file descriptors -----------------------------------------------------------------------
def test_out_of_descriptors_is_resource_exhausted_not_a_client_error(start_agent, packages):
    agent = start_agent()
    agent.add_model("cls", packages.classification)
    agent.client.start_model("cls", wait=True)
    assert agent.client.detect("cls", normal_image()).is_anomalous is False  # connection is up
    soft, hard = resource.prlimit(agent.proc.pid, resource.RLIMIT_NOFILE)
    with SharedMemoryBuffer.create(WIDTH * HEIGHT * 3) as shm:
        shm.write(anomalous_image())
        # No descriptor left: opening the new segment is the first thing that needs one.
        resource.prlimit(agent.proc.pid, resource.RLIMIT_NOFILE, (agent.open_fds(), hard))
        try:
            code, details = code_of(lambda: agent.client.detect("cls", anomalous_image(), shm=shm))
        finally:
            resource.prlimit(agent.proc.pid, resource.RLIMIT_NOFILE, (soft, hard))
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED, details
        assert "out of file descriptors" in details
        assert agent.client.detect("cls", anomalous_image(), shm=shm).is_anomalous  # and it recovers


# 4. Socket path -------------------------------------------------------------------------------------
def stale_socket(path: Path) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(str(path))  # closed without unlinking: what a killed agent leaves


def serve_until_exit(path: Path, **popen) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "edge_agent", "serve", "--socket", f"unix://{path}"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[2],
        **popen,
    )


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to make files of two users")
def test_stale_socket_of_another_user_is_refused_with_exit_3(workdir):
    """As the attack found it: the agent as an unprivileged user, another user's stale socket in a
    sticky world-writable directory. Before the fix: PermissionError traceback, exit 1."""
    nobody = 65534
    as_nobody = lambda: (os.setgid(nobody), os.setuid(nobody))  # noqa: E731
    try:
        subprocess.run(
            [sys.executable, "-c", "import edge_agent"],
            preexec_fn=as_nobody,
            check=True,
            cwd=Path(__file__).resolve().parents[2],
            capture_output=True,
            timeout=120,
        )
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("this Python environment cannot be run by an unprivileged user (e.g. it lives in /root)")
    os.chmod(workdir, 0o1777)
    path = workdir / "agent.sock"
    stale_socket(path)  # root's
    done = serve_until_exit(
        path,
        preexec_fn=lambda: (os.setgid(nobody), os.setuid(nobody)),
        env={**os.environ, "HOME": str(workdir)},
    )
    assert done.returncode == 3, done.stderr
    assert "is a socket of another user (root, uid 0)" in done.stderr
    assert "Traceback" not in done.stderr
    assert path.exists()  # not taken over


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to chown a socket to another user")
def test_even_root_never_takes_over_another_users_socket(workdir):
    path = workdir / "agent.sock"
    stale_socket(path)
    os.chown(path, 65534, 65534)
    done = serve_until_exit(path)
    assert done.returncode == 3, done.stderr
    assert "is a socket of another user" in done.stderr and "--socket in a directory" in done.stderr
    assert os.stat(path).st_uid == 65534


def test_a_squatter_listening_on_the_path_is_refused_with_what_to_do(workdir):
    path = workdir / "agent.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as squatter:
        squatter.bind(str(path))
        squatter.listen()
        done = serve_until_exit(path)
    assert done.returncode == 3, done.stderr
    assert "something is already listening" in done.stderr
    assert "directory only the agent's user and group can write" in done.stderr


def test_a_socket_in_a_world_writable_directory_is_warned_about(workdir):
    os.chmod(workdir, 0o1777)
    agent = SpawnedAgent(workdir).wait_ready()
    try:
        assert "event=socket_dir_world_writable" in agent.log()
    finally:
        assert agent.stop() == 0


# 5. Telemetry ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("home", ["fresh", "unwritable"])
def test_agent_writes_nothing_under_home_and_logs_no_telemetry(workdir, packages, home):
    if home == "fresh":
        home_path = workdir / "home"
        home_path.mkdir()
    else:  # a regular file: nothing can be created below it, not even by root
        home_path = workdir / "home-file"
        home_path.write_text("")
    env = {key: value for key, value in os.environ.items() if not key.startswith("ORT_")}
    env["HOME"] = str(home_path)
    agent = SpawnedAgent(workdir, env=env)
    try:
        shutil.copytree(packages.classification, agent.models_dir / "cls")
        agent.wait_ready()
        agent.client.start_model("cls", wait=True)  # ONNX Runtime imported, a session made and run
        assert agent.client.detect("cls", anomalous_image()).is_anomalous
    finally:
        assert agent.stop() == 0, agent.log()
    if home == "fresh":
        assert [p for p in home_path.rglob("*")] == []
    assert "telemetry" not in agent.log().lower(), agent.log()


# 7. Logs ------------------------------------------------------------------------------------------
def test_rejections_are_rate_limited_and_counted(start_agent, packages):
    agent = start_agent()
    agent.add_model("cls", packages.classification)
    agent.client.start_model("cls", wait=True)
    wrong = normal_image(64, 64)  # the model takes 128x96
    started = time.monotonic()
    for _ in range(200):
        code, _ = code_of(lambda: agent.client.detect("cls", wrong))
        assert code == grpc.StatusCode.INVALID_ARGUMENT
    elapsed = time.monotonic() - started
    assert agent.stop() == 0  # shutdown logs the last summary
    log = agent.log()
    lines = log.count("event=rejected op=DetectAnomalies")
    suppressed = sum(
        int(n) for n in re.findall(r"event=suppressed key=DetectAnomalies/INVALID_ARGUMENT count=(\d+)", log)
    )
    assert lines + suppressed == 200, log[-2000:]
    assert lines <= 10 + elapsed + 2  # a burst of 10, then one a second


def test_debug_log_has_the_agents_lines_without_grpc_noise(workdir, packages):
    agent = SpawnedAgent(workdir, global_args=("--log-level", "DEBUG"))
    try:
        shutil.copytree(packages.classification, agent.models_dir / "cls")
        agent.wait_ready()
        agent.client.start_model("cls", wait=True)
        for _ in range(20):
            agent.client.detect("cls", normal_image())
    finally:
        assert agent.stop() == 0
    log = agent.log()
    assert log.count("event=detected model=cls") == 20
    assert "Loaded running loop" not in log and " DEBUG grpc" not in log


def test_reason_fields_clip_client_names_to_80_characters(start_agent, packages):
    agent = start_agent()
    agent.add_model("cls", packages.classification)
    agent.client.start_model("cls", wait=True)
    name = "n" * 255
    request = detect_request(
        "cls", normal_image(), shared_memory_handle=pb.SharedMemoryHandle(name=name, size=WIDTH * HEIGHT * 3)
    )
    code, details = code_of(lambda: agent.client.stub.DetectAnomalies(request))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "(255 characters)" in details
    rejected = [line for line in agent.log().splitlines() if "event=rejected" in line]
    assert rejected and "n" * 81 not in rejected[-1] and "n" * 80 in rejected[-1]


# 8. Start-up race -----------------------------------------------------------------------------------
def test_sigterm_right_when_the_socket_appears_exits_cleanly(workdir):
    """Before the fix the handlers were installed after start-up: a SIGTERM in between killed the
    process (-15). Repeated, with the signal sent the moment the socket file exists."""
    path = workdir / "agent.sock"
    for attempt in range(8):
        proc = subprocess.Popen(
            [sys.executable, "-m", "edge_agent", "serve", "--socket", f"unix://{path}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert wait_until(path.exists, 120, step_s=0.0002), "the agent never created its socket"
            proc.terminate()
            assert proc.wait(60) == 0, (attempt, proc.stderr.read())
            assert not path.exists()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
