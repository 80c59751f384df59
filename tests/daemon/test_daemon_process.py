"""The daemon as a process: socket file rules, signals, restart, hot add/remove of model components."""

from __future__ import annotations

import grp
import os
import shutil
import socket
import stat
import subprocess
import sys
import time

import grpc
import pytest

from tests.daemon.helpers import anomalous_image, code_of

pytestmark = pytest.mark.timeout(120)


def wait_until(predicate, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_socket_is_0660_with_the_configured_group(start_agent):
    group = grp.getgrgid(os.getgid()).gr_name
    agent = start_agent("--socket-group", group)
    st = os.stat(agent.socket_path)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o660
    assert st.st_gid == os.getgid()


def test_stale_socket_of_a_dead_agent_is_replaced(start_agent, tmp_path):
    first = start_agent()
    path = first.socket_path
    first.proc.kill()  # no cleanup: the socket file stays behind
    first.proc.wait()
    assert path.exists()
    second = start_agent(workdir=first.workdir)
    assert second.client.list_models() == []


def test_a_second_agent_on_a_live_socket_is_refused(start_agent):
    first = start_agent()
    second = start_agent(workdir=first.workdir, ready=False)
    assert second.proc.wait(30) == 3
    log = second.log()
    assert "something is already listening" in log and "start the agent with --socket in a directory" in log
    assert first.client.list_models() == []  # the first one is undisturbed


@pytest.mark.parametrize(
    ("prepare", "message"),
    [
        (lambda p: p.write_text("not a socket"), "is not a socket"),
        (None, "does not exist"),
    ],
    ids=["regular-file", "unknown-group"],
)
def test_start_up_errors_exit_3_with_a_reason(tmp_path, prepare, message):
    path = tmp_path / "a.sock"
    args = [sys.executable, "-m", "edge_agent", "serve", "--socket", f"unix://{path}"]
    if prepare is not None:
        prepare(path)
    else:
        args += ["--socket-group", "no-such-group-xyz"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert done.returncode == 3
    assert message in done.stderr


def test_sigterm_stops_models_removes_the_socket_and_exits_0(start_agent, packages):
    agent = start_agent()
    agent.add_model("cls", packages.classification)
    agent.client.start_model("cls", wait=True)
    assert agent.stop() == 0
    log = agent.log()
    assert "event=model_stopped model=cls" in log and "event=stopped" in log
    assert not agent.socket_path.exists()


def test_restart_on_the_same_socket_serves_the_same_models(start_agent, packages):
    first = start_agent()
    first.add_model("cls", packages.classification)
    first.client.start_model("cls", wait=True)
    assert first.stop() == 0
    second = start_agent(workdir=first.workdir)
    assert [(m.name, m.status) for m in second.client.list_models()] == [("cls", "STOPPED")]
    second.client.start_model("cls", wait=True)
    assert second.client.detect("cls", anomalous_image()).is_anomalous


def test_model_components_appear_and_disappear_without_restart(start_agent, packages):
    agent = start_agent()
    assert agent.client.list_models() == []
    directory = agent.add_model("hot", packages.classification)
    assert [m.name for m in agent.client.list_models()] == ["hot"]
    agent.client.start_model("hot", wait=True)
    shutil.rmtree(directory)
    assert wait_until(lambda: "event=model_removed model=hot" in agent.log())
    assert agent.client.list_models() == []
    code, _ = code_of(lambda: agent.client.describe_model("hot"))
    assert code == grpc.StatusCode.NOT_FOUND
    assert "event=model_stopped model=hot" in agent.log()  # a running model is stopped first
    os.symlink(packages.segmentation, agent.models_dir / "linked")  # a symlinked component counts too
    assert wait_until(lambda: "event=model_added model=linked" in agent.log())
    agent.client.start_model("linked", wait=True)
    assert agent.client.detect("linked", anomalous_image()).anomalies[0].name == "background"


def test_socket_path_too_long_is_refused(tmp_path):
    long_path = "/tmp/" + "x" * 120 + ".sock"
    done = subprocess.run(
        [sys.executable, "-m", "edge_agent", "serve", "--socket", f"unix://{long_path}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 3 and "longer than 107 bytes" in done.stderr


def test_raw_socket_garbage_does_not_take_the_agent_down(start_agent):
    agent = start_agent()
    for payload in (b"GET / HTTP/1.1\r\n\r\n", b"\x00" * 1000, os.urandom(4096)):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as raw:
            raw.connect(str(agent.socket_path))
            raw.sendall(payload)
    assert agent.client.list_models() == []
    assert agent.proc.poll() is None


def test_calls_whose_request_never_arrives_do_not_block_other_clients(start_agent, packages):
    """A client may open streams and never send the request message; others must still be served."""
    import threading

    from edge_agent.protocol import edge_agent_pb2 as pb

    agent = start_agent("--detect-threads", "2")
    agent.add_model("cls", packages.classification)
    agent.client.start_model("cls", wait=True)
    hold = threading.Event()

    def never_sends():
        hold.wait()
        yield from ()

    stalled = []
    for method in ("ListModels", "DetectAnomalies", "StopModel"):
        open_call = agent.client.channel.stream_unary(f"/AWS.LookoutVision.EdgeAgent/{method}")
        stalled += [open_call.future(never_sends()) for _ in range(20)]
    try:
        assert [m.name for m in agent.client.list_models()] == ["cls"]
        other = agent.client.stub.DescribeModel(pb.DescribeModelRequest(model_component="cls"), timeout=5)
        assert other.model_description.status == pb.RUNNING
        assert agent.client.detect("cls", anomalous_image()).is_anomalous
    finally:
        hold.set()
        for call in stalled:
            call.cancel()


def test_socket_has_its_mode_even_under_a_permissive_umask(packages, tmp_path):
    """The mode is checked the instant the socket appears; the SIGTERM that follows at once must still
    end in a clean exit (it once raced the signal handlers: tests/daemon/test_hardening.py)."""
    path = tmp_path / "a.sock"
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge_agent", "serve", "--socket", f"unix://{path}"],
        preexec_fn=lambda: os.umask(0),
    )
    try:
        assert wait_until(path.exists, 120), "the agent never created its socket"
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o660
    finally:
        proc.terminate()
        assert proc.wait(60) == 0
