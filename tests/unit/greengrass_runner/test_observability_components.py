"""The observability components under greengrass/ are valid recipes with the IPC access they need."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from edge_agent.greengrass_runner.recipe import load_recipe

REPO = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("folder", ["metrics-publisher", "client-iot"])
def test_json_and_yaml_forms_are_the_same_recipe(folder):
    as_json = json.loads((REPO / f"greengrass/{folder}/recipe.json").read_text())
    as_yaml = yaml.safe_load((REPO / f"greengrass/{folder}/recipe.yaml").read_text())
    assert as_json == as_yaml
    load_recipe(REPO / f"greengrass/{folder}/recipe.json")


def test_metrics_publisher_may_publish_to_the_cloudwatch_component():
    recipe = load_recipe(REPO / "greengrass/metrics-publisher/recipe.json")
    config = recipe.default_configuration
    (policy,) = config["accessControl"]["aws.greengrass.ipc.pubsub"].values()
    assert policy["operations"] == ["aws.greengrass#PublishToTopic"]
    assert policy["resources"] == [config["Topic"]] == ["cloudwatch/metric/put"]
    assert not config["Namespace"].startswith("AWS/")
    names = {d.name: d for d in recipe.dependencies}
    assert names["aws.greengrass.Cloudwatch"].hard and names["aws.iot.lookoutvision.EdgeAgent"].hard
    steps, _, _ = recipe.select({"os": "linux", "architecture": "aarch64"})
    assert "-m edge_agent.observability.cloudwatch" in steps["run"].script
    assert (
        "lookoutvision_edge_agent/wheelhouse/wheels" in steps["install"].script
    )  # offline: the agent's wheelhouse


def test_iot_client_may_publish_its_results_topic():
    recipe = load_recipe(REPO / "greengrass/client-iot/recipe.json")
    config = recipe.default_configuration
    (policy,) = config["accessControl"]["aws.greengrass.ipc.mqttproxy"].values()
    assert policy["operations"] == ["aws.greengrass#PublishToIoTCore"]
    assert policy["resources"] == [config["ResultsTopic"]]
    steps, _, artifacts = recipe.select({"os": "linux", "architecture": "amd64"})
    assert [a.filename for a in artifacts] == [
        "edge_agent_iot_example.py",
        "edge_agent_pb2.py",
        "edge_agent_pb2_grpc.py",
    ]
    assert all(a.uri.startswith("s3://") for a in artifacts)
    assert (
        "awsiotsdk" in steps["install"].script
        and "--topic '{configuration:/ResultsTopic}'" in steps["run"].script
    )
