"""Metrics, health and the local endpoints, against the real agent process on real sockets."""

from __future__ import annotations

import base64
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from PIL import Image

from edge_agent.client import SharedMemoryBuffer
from edge_agent.observability.health import AGENT_SERVICE, model_service
from edge_agent.protocol import edge_agent_pb2 as pb
from tests.daemon.helpers import HEIGHT, WIDTH, anomalous_image, code_of, detect_request, normal_image
from tests.daemon.observing import http_request, listeners, listening_url, scrape, value

pytestmark = pytest.mark.timeout(240)
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
SERVICE_UNKNOWN = health_pb2.HealthCheckResponse.SERVICE_UNKNOWN
PROJECT, VERSION = "bright-blob", "2"  # from the test packages' model_arn (…:model/bright-blob/2)


def metrics_socket(agent) -> str:
    return f"unix://{agent.workdir / 'metrics.sock'}"


def health_of(agent, service: str) -> int:
    stub = health_pb2_grpc.HealthStub(agent.client.channel)
    return stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=10).status


def wait_health(agent, service: str, wanted: int, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while (status := health_of(agent, service)) != wanted:
        assert time.monotonic() < deadline, f"{service} stayed {status}, wanted {wanted}"
        time.sleep(0.05)


def test_counters_move_exactly_as_calls_are_made(start_agent, packages):
    agent = start_agent(
        "--metrics-address", "unix://./metrics.sock", "--concurrency", "1", "--queue-depth", "0"
    )
    target = f"unix://{agent.workdir / 'metrics.sock'}"
    agent.add_model("seg", packages.segmentation)
    agent.add_model("heavy", packages.heavy)
    agent.client.start_model("seg", wait=True)
    agent.client.start_model("heavy", wait=True)
    before = scrape(target)
    assert value(before, "lookoutvision_processed_image_count_total") == 0

    n_normal, n_anomalous, n_invalid, n_not_running = 4, 3, 2, 1
    for _ in range(n_normal):
        assert not agent.client.detect("seg", normal_image()).is_anomalous
    with SharedMemoryBuffer.create(WIDTH * HEIGHT * 3) as shm:
        for _ in range(n_anomalous):
            assert agent.client.detect("seg", anomalous_image(), shm=shm).is_anomalous
    for _ in range(n_invalid):  # wrong size: INVALID_ARGUMENT
        code, _ = code_of(lambda: agent.client.detect("seg", normal_image(64, 64)))
        assert code == grpc.StatusCode.INVALID_ARGUMENT
    code, _ = code_of(lambda: agent.client.detect("unknown-model", normal_image()))
    assert code == grpc.StatusCode.NOT_FOUND

    # Throttling: concurrency 1 and no queue, 8 callers at once on the slow model; count what they saw.
    request = detect_request("heavy", normal_image(256, 256))
    barrier = threading.Barrier(8)

    def call(_: int) -> str:
        barrier.wait()
        try:
            agent.client.stub.DetectAnomalies(request, timeout=60)
            return "OK"
        except grpc.RpcError as exc:
            return exc.code().name

    with ThreadPoolExecutor(8) as pool:
        seen = list(pool.map(call, range(8)))
    k_throttled, heavy_ok = seen.count("RESOURCE_EXHAUSTED"), seen.count("OK")
    assert k_throttled >= 1 and heavy_ok >= 1 and k_throttled + heavy_ok == 8, seen

    agent.client.stop_model("seg")
    code, _ = code_of(lambda: agent.client.detect("seg", normal_image()))
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    m = scrape(target)
    seg = {"model_component": "seg", "project": PROJECT, "model_version": VERSION}
    ok = n_normal + n_anomalous
    assert value(m, "lookoutvision_successful_request_count_total", **seg) == ok
    assert value(m, "lookoutvision_processed_image_count_total", **seg) == ok
    assert value(m, "lookoutvision_detected_anomaly_count_total", **seg) == n_anomalous
    assert value(m, "lookoutvision_invalid_image_count_total", **seg) == n_invalid
    assert value(m, "lookoutvision_error_count_total", **seg) == n_invalid + n_not_running
    assert value(m, "lookoutvision_throttled_count_total", **seg) == 0
    heavy = {"model_component": "heavy"}
    assert value(m, "lookoutvision_throttled_count_total", **heavy) == k_throttled
    assert value(m, "lookoutvision_successful_request_count_total", **heavy) == heavy_ok
    assert value(m, "lookoutvision_error_count_total", **heavy) == 0
    # Histograms fill: one observation per successful call, every one inside the buckets.
    assert value(m, "lookoutvision_time_seconds_count", **seg) == ok
    assert value(m, "lookoutvision_time_seconds_bucket", le="+Inf", **seg) == ok
    assert value(m, "lookoutvision_time_seconds_sum", **seg) > 0
    assert value(m, "lookoutvision_time_seconds_count", **heavy) == heavy_ok
    slowest = value(m, "lookoutvision_time_seconds_bucket", le="10.0", **heavy)
    assert slowest == heavy_ok
    # Per RPC and code, frames by transport, model state; the unknown model has no series of its own.
    assert value(m, "edge_agent_grpc_requests_total", method="DetectAnomalies", code="NOT_FOUND") == 1
    assert value(
        m, "edge_agent_grpc_requests_total", method="DetectAnomalies", code="RESOURCE_EXHAUSTED"
    ) == (k_throttled)
    assert value(m, "edge_agent_grpc_requests_total", method="StopModel", code="OK") == 1
    assert value(m, "edge_agent_frames_total", model_component="seg", transport="inline") == (
        n_normal + n_invalid + n_not_running
    )
    shm_frames = value(
        m, "edge_agent_frames_total", model_component="seg", transport="shared_memory_in_place"
    )
    shm_frames += value(m, "edge_agent_frames_total", model_component="seg", transport="shared_memory_copied")
    assert shm_frames == n_anomalous
    assert not [k for k in m if dict(k[1]).get("model_component") == "unknown-model"]
    assert value(m, "edge_agent_model_state", model_component="seg", state="STOPPED") == 1
    assert value(m, "edge_agent_model_state", model_component="seg", state="RUNNING") == 0
    assert value(m, "edge_agent_model_state", model_component="heavy", state="RUNNING") == 1
    assert ("edge_agent_model_queue_depth", (("model_component", "heavy"),)) in m


def test_health_follows_model_start_stop_failure_and_removal(start_agent, packages):
    agent = start_agent()
    assert health_of(agent, "") == SERVING
    assert health_of(agent, AGENT_SERVICE) == SERVING
    directory = agent.add_model("cls", packages.classification)
    agent.client.wait_for("cls", "STOPPED")
    wait_health(agent, model_service("cls"), NOT_SERVING)
    agent.client.start_model("cls", wait=True)
    wait_health(agent, model_service("cls"), SERVING)
    agent.client.stop_model("cls")
    wait_health(agent, model_service("cls"), NOT_SERVING)

    good = (directory / "model.onnx").read_bytes()
    (directory / "model.onnx").write_bytes(good[: len(good) // 2])
    agent.client.stub.StartModel(pb.StartModelRequest(model_component="cls"))
    agent.client.wait_for("cls", "FAILED")
    wait_health(agent, model_service("cls"), NOT_SERVING)
    (directory / "model.onnx").write_bytes(good)
    agent.client.start_model("cls", wait=True)
    wait_health(agent, model_service("cls"), SERVING)

    code, _ = code_of(lambda: health_of(agent, model_service("never-deployed")))
    assert code == grpc.StatusCode.NOT_FOUND
    import shutil

    shutil.rmtree(directory)
    wait_health(agent, model_service("cls"), SERVICE_UNKNOWN)


def test_health_watch_sees_not_serving_when_the_agent_shuts_down(start_agent):
    agent = start_agent()
    stub = health_pb2_grpc.HealthStub(agent.client.channel)
    stream = stub.Watch(health_pb2.HealthCheckRequest(service=""), timeout=60)
    assert next(stream).status == SERVING
    agent.proc.send_signal(signal.SIGTERM)
    assert next(stream).status == NOT_SERVING
    assert agent.proc.wait(30) == 0


def test_models_health_cli_exit_codes(start_agent, packages):
    agent = start_agent()
    agent.add_model("cls", packages.classification)
    agent.client.wait_for("cls", "STOPPED")

    def health(*args: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "edge_agent", "models", "health", *args, "--socket", agent.socket]
        return subprocess.run(command, capture_output=True, text=True, timeout=120)

    assert (health().returncode, health().stdout.strip()) == (0, "SERVING")
    stopped = health("cls")
    assert (stopped.returncode, stopped.stdout.strip()) == (1, "NOT_SERVING")
    assert health("nope").stdout.strip() == "NOT_FOUND" and health("nope").returncode == 1
    agent.client.start_model("cls")
    waited = health("cls", "--wait", "--timeout", "60", "--json")
    assert waited.returncode == 0
    assert json.loads(waited.stdout) == {"service": model_service("cls"), "status": "SERVING"}
    agent.stop()
    gone = health()
    assert gone.returncode == 3 and "UNAVAILABLE" in gone.stderr


def test_metrics_endpoint_is_absent_unless_asked_for(start_agent):
    agent = start_agent()
    found = listeners(agent.proc.pid)
    assert found["tcp"] == set()
    assert found["unix"] == {str(agent.socket_path)}
    assert "event=http_listening" not in agent.log()


def test_metrics_endpoint_binds_only_where_told(start_agent):
    tcp = start_agent("--metrics-address", "127.0.0.1:0")
    url = listening_url(tcp, "metrics")
    found = listeners(tcp.proc.pid)
    assert found["tcp"] == {url[len("http://") :].rstrip("/")} and url.startswith("http://127.0.0.1:")
    assert found["unix"] == {str(tcp.socket_path)}
    assert value(scrape(url), "edge_agent_shared_memory_frames_in_place") in (0, 1)

    unix = start_agent("--metrics-address", "unix://./m.sock", "--http-detect-address", "unix://./d.sock")
    found = listeners(unix.proc.pid)
    assert found["tcp"] == set()
    assert found["unix"] == {str(unix.socket_path), "m.sock", "d.sock"}  # relative to the agent
    assert oct((unix.workdir / "m.sock").stat().st_mode & 0o777) == "0o660"
    assert http_request(f"unix://{unix.workdir / 'm.sock'}", "GET", "/healthz")[2] == b"SERVING\n"
    unix.stop()
    assert not (unix.workdir / "m.sock").exists() and not (unix.workdir / "d.sock").exists()


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("0.0.0.0:9464", "not a loopback address"),
        ("192.168.1.10:9464", "not a loopback address"),
        ("metrics.example.com:9464", "loopback IP address"),
        ("9464", "HOST:PORT"),
    ],
)
def test_metrics_endpoint_refuses_non_loopback_addresses(tmp_path, address, message):
    command = [sys.executable, "-m", "edge_agent", "serve", "--socket", f"unix://{tmp_path}/a.sock"]
    done = subprocess.run(
        [*command, "--metrics-address", address], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1 and message in done.stderr, done.stderr
    assert not (tmp_path / "a.sock").exists()


def test_an_endpoint_that_cannot_bind_stops_the_agent_from_starting(start_agent, tmp_path):
    (tmp_path / "taken").write_text("not a socket")
    agent = start_agent("--metrics-address", f"unix://{tmp_path}/taken", ready=False)
    assert agent.proc.wait(60) == 3
    assert "is not a socket" in agent.log()
    assert not agent.socket_path.exists()


def test_http_detect_answers_in_the_cloud_shape(start_agent, packages):
    agent = start_agent("--http-detect-address", "127.0.0.1:0", "--metrics-address", "unix://./m.sock")
    url = listening_url(agent, "http-detect")
    agent.add_model("seg", packages.segmentation)
    agent.client.start_model("seg", wait=True)
    image = anomalous_image()
    png = io.BytesIO()
    Image.fromarray(image).save(png, "PNG")
    status, headers, body = http_request(
        url, "POST", "/detect-anomalies?model_component=seg", png.getvalue(), {"Content-Type": "image/png"}
    )
    assert status == 200, body
    result = json.loads(body)["DetectAnomalyResult"]
    direct = agent.client.detect("seg", image)
    assert result["Source"] == {"Type": "direct"}
    assert result["IsAnomalous"] is True and result["Confidence"] == pytest.approx(direct.confidence)
    assert result["Anomalies"][0]["Name"] == "background"
    assert [(a["Name"], a["PixelAnomaly"]["Color"]) for a in result["Anomalies"]] == [
        (a.name, a.hex_color) for a in direct.anomalies
    ]
    assert result["AnomalyMask"].startswith("iVBORw0")  # base64 of a PNG, as the cloud's JSON shows
    mask = np.asarray(Image.open(io.BytesIO(base64.b64decode(result["AnomalyMask"]))).convert("RGB"))
    assert np.array_equal(mask, direct.mask)

    # The cloud's way of naming the model, JPEG, and the cloud's errors.
    jpeg = io.BytesIO()
    Image.fromarray(normal_image()).save(jpeg, "JPEG", quality=95)
    status, _, body = http_request(
        url,
        "POST",
        f"/detect-anomalies?ProjectName={PROJECT}&ModelVersion={VERSION}",
        jpeg.getvalue(),
        {"Content-Type": "image/jpeg"},
    )
    assert status == 200 and json.loads(body)["DetectAnomalyResult"]["IsAnomalous"] is False
    status, headers, body = http_request(
        url, "POST", "/detect-anomalies?model_component=seg", jpeg.getvalue(), {"Content-Type": "image/png"}
    )
    assert status == 400 and headers["x-amzn-errortype"] == "ValidationException"
    small = io.BytesIO()
    Image.fromarray(normal_image(64, 64)).save(small, "PNG")
    status, _, body = http_request(
        url, "POST", "/detect-anomalies?model_component=seg", small.getvalue(), {"Content-Type": "image/png"}
    )
    assert status == 400 and "takes 128x96" in json.loads(body)["Message"]
    status, _, body = http_request(
        url, "POST", "/detect-anomalies?model_component=nope", png.getvalue(), {"Content-Type": "image/png"}
    )
    assert status == 404 and json.loads(body)["__type"] == "ResourceNotFoundException"
    agent.client.stop_model("seg")
    status, _, body = http_request(
        url, "POST", "/detect-anomalies?model_component=seg", png.getvalue(), {"Content-Type": "image/png"}
    )
    assert status == 409 and json.loads(body)["__type"] == "ConflictException"
    # The HTTP calls went through the agent: its counters saw them.
    m = scrape(f"unix://{agent.workdir / 'm.sock'}")
    assert value(m, "lookoutvision_successful_request_count_total", model_component="seg") == 3
    assert value(m, "lookoutvision_invalid_image_count_total", model_component="seg") == 1


def test_dashboard_history_survives_a_restart(start_agent, packages, tmp_path):
    db = tmp_path / "stats.db"
    args = ("--metrics-address", "unix://./m.sock", "--stats-db", str(db))
    first = start_agent(*args)
    first.add_model("cls", packages.classification)
    first.client.start_model("cls", wait=True)
    for image in (normal_image(), anomalous_image(), anomalous_image()):
        first.client.detect("cls", image)
    assert first.stop() == 0
    second = start_agent(*args, workdir=first.workdir)
    status, _, body = http_request(f"unix://{second.workdir / 'm.sock'}", "GET", "/api/summary?window=1w")
    assert status == 200
    (model,) = json.loads(body)["models"]
    assert model["since_start"]["processed_image_count"] == 0  # counters restart with the agent
    assert model["window"]["totals"]["processed"] == 3 and model["window"]["totals"]["anomalous"] == 2
    assert model["window"]["anomaly_ratio"] == pytest.approx(2 / 3)


def test_health_follows_a_package_replaced_on_disk(start_agent, packages):
    agent = start_agent()
    directory = agent.add_model("cls", packages.classification)
    agent.client.start_model("cls", wait=True)
    wait_health(agent, model_service("cls"), SERVING)
    manifest = directory / "manifest.json"
    later = manifest.stat().st_mtime + 10
    os.utime(manifest, (later, later))  # a redeployed package: same name, files changed
    # The registry restarts a RUNNING model whose package changed; health ends SERVING again.
    deadline = time.monotonic() + 60
    while "event=model_changed model=cls" not in agent.log():
        assert time.monotonic() < deadline, agent.log()
        time.sleep(0.05)
    agent.client.wait_for("cls", "RUNNING")
    wait_health(agent, model_service("cls"), SERVING)
