"""The model component a packaging job writes: what the nucleus accepts, and its Socket check on a device.

Recipes are checked against gdk's recipe schema and the nucleus's rules for every target; then a
packaged component is deployed through the local runner next to a stand-in agent component (its
configuration and a `venv/bin/python` are all the model's steps use; the real agent is deployed in
tests/e2e), with real processes and the real device step.
"""

from __future__ import annotations

import json
import os
import platform
import pwd
import sys
from pathlib import Path

import pytest

from edge_agent.greengrass_runner import (
    ComponentStore,
    ConfigurationUpdate,
    Kernel,
    LifecycleError,
    parse_recipe,
)
from edge_agent.greengrass_runner.versions import satisfies
from edge_agent.packager import GreengrassConfiguration, JobStore, PackagingRequest, start_job
from edge_agent.packager.catalogue import load_catalogue
from edge_agent.packager.config import resolve
from edge_agent.packager.output import LocalOutput, S3Output, open_output
from edge_agent.packager.recipe import model_recipe
from tests.unit.greengrass_runner.recipe_checks import recipe_problems

AGENT = "aws.iot.lookoutvision.EdgeAgent"
AGENT_VERSION = "1.4.0"  # the agent component's version from this release on
DEFAULT_SOCKET = "unix:///tmp/aws.iot.lookoutvision.EdgeAgent.sock"
NVIDIA_OPTIONS = '{"gpu-code": "sm_75", "trt-ver": "8.6.1", "cuda-ver": "12.2"}'
TARGETS = {
    "x86_64-cpu": GreengrassConfiguration(target_platform={"Os": "LINUX", "Arch": "X86_64"}),
    "arm64-cpu": GreengrassConfiguration(target_platform={"Os": "LINUX", "Arch": "ARM64"}),
    "x86_64-nvidia": GreengrassConfiguration(
        target_platform={"Os": "LINUX", "Arch": "X86_64", "Accelerator": "NVIDIA"},
        compiler_options=NVIDIA_OPTIONS,
    ),
    "jetson_xavier": GreengrassConfiguration(target_device="jetson_xavier"),
}


def package(model: Path, out: Path, name: str, config: GreengrassConfiguration, jobs: Path) -> dict:
    config = GreengrassConfiguration(**{**config.__dict__, "component_name": name})
    record = start_job(PackagingRequest(model, config, output=str(out)), JobStore(jobs))
    assert record.status == "SUCCEEDED", record.status_message
    return json.loads((out / f"recipes/{name}-1.0.0.json").read_text())


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_every_target_passes_the_schema_and_the_nucleus_rules(
    blob_model: Path, tmp_path: Path, target: str
) -> None:
    recipe = package(
        blob_model, tmp_path / "out", "com.example.Checked", TARGETS[target], tmp_path / "j.sqlite3"
    )
    assert recipe_problems(recipe) == []
    (manifest,) = recipe["Manifests"]
    assert all(a["URI"].startswith("s3://") for a in manifest["Artifacts"])
    assert recipe["ComponentConfiguration"]["DefaultConfiguration"]["Socket"] == DEFAULT_SOCKET
    requirement = recipe["ComponentDependencies"][AGENT]["VersionRequirement"]
    assert satisfies(AGENT_VERSION, requirement) and not satisfies("2.0.0", requirement)


def test_artifact_uris_name_the_s3_location(tmp_path: Path) -> None:
    catalogue = load_catalogue()
    config = GreengrassConfiguration(component_name="C", target_platform={"Os": "LINUX", "Arch": "X86_64"})
    spec = resolve(config, 1, catalogue, str(tmp_path))
    s3 = S3Output("s3://factory-models/line-3/", client=object())
    staged = LocalOutput(tmp_path, s3_location="s3://factory-models/line-3")
    for output in (s3, staged, open_output(str(tmp_path), "s3://factory-models/line-3/")):
        uri = output.artifact_uri("C", "1.0.0", "model.zip")
        assert uri == "s3://factory-models/line-3/artifacts/C/1.0.0/model.zip"
        recipe = model_recipe(spec, catalogue, uri, AGENT)
        assert recipe_problems(recipe) == [] and recipe["Manifests"][0]["Artifacts"][0]["URI"] == uri
    # A folder with no S3 location: never file://, and a bucket that publishing refuses (upper case).
    assert (
        LocalOutput(tmp_path).artifact_uri("C", "1.0.0", "model.zip")
        == "s3://YOUR-BUCKET/artifacts/C/1.0.0/model.zip"
    )
    with pytest.raises(Exception, match="names no bucket"):
        LocalOutput(tmp_path, s3_location="s3:///prefix")


def stand_in_agent() -> dict:
    wrapper = f"{{ echo '#!/bin/sh'; echo 'exec {sys.executable} \"$@\"'; }} > venv/bin/python"
    return {
        "RecipeFormatVersion": "2020-01-25",
        "ComponentName": AGENT,
        "ComponentVersion": AGENT_VERSION,
        "ComponentConfiguration": {
            "DefaultConfiguration": {"Socket": DEFAULT_SOCKET, "ModelsDirectory": "", "Backend": "cpu"}
        },
        "Manifests": [
            {
                "Platform": {"os": "linux"},
                "Lifecycle": {
                    "install": f"mkdir -p venv/bin && {wrapper} && chmod +x venv/bin/python",
                    "startup": "true",
                },
            }
        ],
    }


def test_deployed_model_checks_its_socket_against_the_agents(blob_model: Path, tmp_path: Path) -> None:
    arch = "X86_64" if platform.machine().lower() in ("x86_64", "amd64") else "ARM64"
    out = tmp_path / "out"
    model = "com.example.Linked"
    package(
        blob_model,
        out,
        model,
        GreengrassConfiguration(target_platform={"Os": "LINUX", "Arch": arch}),
        tmp_path / "j.sqlite3",
    )
    kernel = Kernel(
        tmp_path / "gg",
        ComponentStore(
            recipe_dirs=[out / "recipes"],
            artifact_dirs=[out / "artifacts"],
            extra=[parse_recipe(stand_in_agent())],
        ),
        run_as=pwd.getpwuid(os.geteuid()).pw_name,  # tmp_path is in a folder only we may enter
    )
    try:
        # Same Socket on both (the defaults): the startup step links the model into the agent's models folder.
        assert kernel.deploy({model: "1.0.0"}) == [AGENT, model]
        link = kernel.work_path(AGENT) / "models" / model
        assert link.is_symlink() and link.resolve() == (kernel.work_path(model) / "model").resolve()
        assert (link / "manifest.json").is_file()

        # The agent moves to another socket but the model keeps the old one: the step fails and says why.
        other = f"unix://{tmp_path}/other.sock"
        with pytest.raises(LifecycleError, match=f"component {model}: startup exited with 1"):
            kernel.deploy({model: "1.0.0"}, {AGENT: ConfigurationUpdate(merge={"Socket": other})})
        text = kernel.log_path(model).read_text()
        assert f"its Socket is {DEFAULT_SOCKET}, but the agent component {AGENT} serves on {other}" in text
        assert '{"Socket": "' + other + '"}' in text

        # As the AWS component documentation says: set the same Socket on the model component.
        kernel.deploy({model: "1.0.0"}, {model: ConfigurationUpdate(merge={"Socket": other})})
        assert {r["name"]: r["state"] for r in kernel.list()} == {AGENT: "RUNNING", model: "RUNNING"}
    finally:
        kernel.remove_all()
