"""A model component's autostart (the link step with --autostart true) against a real agent process.

The step may run before the agent is up or has scanned its models folder: it waits, through the
client's one start-and-wait loop (EdgeAgentClient.start_model_if_needed(wait_for_agent=True)).
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from pathlib import Path

import pytest

from edge_agent.client import EdgeAgentClient
from edge_agent.component.model import main

pytestmark = pytest.mark.timeout(120)


def _link_args(component: str, model: Path, workdir: Path, timeout_s: float = 60.0) -> list[str]:
    return [
        "link",
        "--component",
        component,
        "--model",
        str(model),
        "--models-dir",
        str(workdir / "models"),
        "--default-models-dir",
        str(workdir / "unused"),
        "--socket",
        f"unix://{workdir}/agent.sock",
        "--autostart",
        "true",
        "--timeout",
        str(timeout_s),
    ]


def test_autostart_waits_for_an_agent_that_is_not_up_yet(start_agent, packages, tmp_path: Path) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="ea-", dir="/tmp"))
    try:
        model = tmp_path / "model"
        shutil.copytree(packages.classification, model)
        outcome: list[int] = []
        step = threading.Thread(target=lambda: outcome.append(main(_link_args("M", model, workdir))))
        step.start()  # no agent, no socket yet: the step waits
        step.join(timeout=1.0)
        assert step.is_alive() and not outcome
        agent = start_agent(workdir=workdir)
        step.join(timeout=90)
        assert outcome == [0], agent.log()
        with EdgeAgentClient(agent.socket) as client:
            assert client.describe_model("M").status == "RUNNING"
            # a second start (the nucleus restarts the component) finds it RUNNING and changes nothing
            assert main(_link_args("M", model, workdir)) == 0
            assert client.describe_model("M").status == "RUNNING"
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def test_autostart_of_a_broken_model_fails_the_step_with_the_agents_reason(
    start_agent, packages, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    agent = start_agent()
    model = tmp_path / "broken"
    shutil.copytree(packages.classification, model)
    (model / "model.onnx").write_bytes(b"not an onnx graph")
    assert main(_link_args("Broken", model, agent.workdir)) == 1
    assert "op=autostart model=Broken failed=" in caplog.text
    assert "failed to start" in caplog.text
