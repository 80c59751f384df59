"""The CLI a user types: `edge-agent models ...` and `edge-agent detect ...` against a real agent."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from tests.daemon.helpers import anomalous_image, normal_image

pytestmark = pytest.mark.timeout(180)


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "edge_agent", *args], capture_output=True, text=True, timeout=120
    )


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("images")
    Image.fromarray(anomalous_image()).save(folder / "a-anomalous.png")
    Image.fromarray(normal_image()).save(folder / "b-normal.jpg", quality=95)
    Image.fromarray(normal_image(64, 64)).save(folder / "c-wrong-size.png")
    return folder


def test_models_commands_drive_the_lifecycle(start_agent, packages):
    agent = start_agent()
    agent.add_model("seg", packages.segmentation)
    listed = json_lines(cli("models", "list", "--socket", agent.socket, "--json").stdout)
    assert [(m["model_component"], m["status"]) for m in listed] == [("seg", "STOPPED")]
    started = cli("models", "start", "seg", "--wait", "--socket", agent.socket, "--json")
    assert started.returncode == 0 and json_lines(started.stdout)[0]["status"] == "RUNNING"
    again = cli("models", "start", "seg", "--socket", agent.socket)
    assert again.returncode == 1 and "FAILED_PRECONDITION" in again.stderr
    stopped = cli("models", "stop", "seg", "--socket", agent.socket)
    assert json_lines(stopped.stdout) == [{"model_component": "seg", "status": "STOPPED"}]
    table = cli("models", "list", "--socket", agent.socket).stdout.splitlines()
    assert table[0].split()[:2] == ["MODEL_COMPONENT", "STATUS"] and table[1].split()[:2] == [
        "seg",
        "STOPPED",
    ]


def test_detect_through_agent_and_from_model_dir_print_the_same_results(
    start_agent, packages, images, tmp_path
):
    agent = start_agent()
    agent.add_model("seg", packages.segmentation)
    agent.client.start_model("seg", wait=True)
    runs = {
        "shm": cli(
            "detect",
            "--socket",
            agent.socket,
            "--component",
            "seg",
            str(images),
            "--mask-out",
            str(tmp_path / "m"),
        ),
        "inline": cli("detect", "--socket", agent.socket, "--component", "seg", "--inline", str(images)),
        "model": cli("detect", "--model", str(packages.segmentation), str(images)),
    }
    results = {name: json_lines(run.stdout) for name, run in runs.items()}
    for name, run in runs.items():
        assert run.returncode == 1, (name, run.stderr)  # the wrong-size image fails, the others succeed
        assert "3 images: 1 anomalous, 1 normal, 1 failed" in run.stderr
        assert [next(iter(r)) for r in results[name]] == ["image"] * 3
    strip = [{k: v for k, v in r.items() if k not in ("mask", "overlay", "error")} for r in results["shm"]]
    for name in ("inline", "model"):
        assert [{k: v for k, v in r.items() if k != "error"} for r in results[name]] == strip
    first, second, third = results["shm"]
    assert first["is_anomalous"] and first["anomalies"][1]["name"] == "bright"
    assert Path(first["mask"]).is_file() and Path(first["overlay"]).is_file()
    assert second["is_anomalous"] is False
    assert third["code"] == "INVALID_ARGUMENT" and "takes 128x96" in third["error"]
    report = (tmp_path / "m" / "report.html").read_text()
    assert "a-anomalous.png" in report and "1 anomalous" in report


def test_without_an_agent_the_cli_says_so_and_exits_3(tmp_path, images):
    run = cli("models", "list", "--socket", f"unix://{tmp_path}/none.sock")
    assert run.returncode == 3 and "is the agent running" in run.stderr
    run = cli(
        "detect",
        "--socket",
        f"unix://{tmp_path}/none.sock",
        "--component",
        "x",
        str(images / "a-anomalous.png"),
    )
    assert run.returncode == 3


def test_serve_refuses_malformed_options():
    run = cli("serve", "--model", "no-equals-sign")
    assert run.returncode == 1 and "expected NAME=DIR" in run.stderr
    run = cli("serve", "--socket-mode", "rw")
    assert run.returncode == 1 and "octal" in run.stderr
    run = cli("serve", "--poll-interval", "0")
    assert run.returncode == 1 and "more than 0 seconds" in run.stderr
