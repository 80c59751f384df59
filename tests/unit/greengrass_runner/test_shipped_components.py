"""The recipes under greengrass/ and the packaging template follow the Greengrass V2 recipe format."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from edge_agent.greengrass_runner.recipe import load_recipe
from edge_agent.packager.catalogue import load_catalogue

REPO = Path(__file__).resolve().parents[3]
RECIPES = ["greengrass/agent/recipe", "greengrass/client/recipe"]


@pytest.mark.parametrize("stem", RECIPES)
def test_json_and_yaml_forms_are_the_same_recipe(stem: str) -> None:
    as_json = json.loads((REPO / f"{stem}.json").read_text())
    as_yaml = yaml.safe_load((REPO / f"{stem}.yaml").read_text())
    assert as_json == as_yaml
    assert load_recipe(REPO / f"{stem}.json").raw == load_recipe(REPO / f"{stem}.yaml").raw


def test_agent_component_contract() -> None:
    recipe = load_recipe(REPO / "greengrass/agent/recipe.json")
    catalogue = load_catalogue()
    assert recipe.name == catalogue.agent_component == "aws.iot.lookoutvision.EdgeAgent"
    assert recipe.default_configuration["Socket"] == "unix:///tmp/aws.iot.lookoutvision.EdgeAgent.sock"
    assert recipe.default_configuration["SocketGroup"] == "ggc_group"
    assert "ModelsDirectory" in recipe.default_configuration
    for arch in ("amd64", "aarch64"):
        steps, _, artifacts = recipe.select({"os": "linux", "architecture": arch})
        assert "edge-agent" in steps["run"].script and "serve" in steps["run"].script
        # One ZIP per platform: the wheelhouse, install.py and the proto at the guide's path.
        assert [a.filename for a in artifacts] == ["lookoutvision_edge_agent.zip"]
        assert artifacts[0].unarchive == "ZIP"
    with pytest.raises(Exception, match="no manifest"):
        recipe.select({"os": "linux", "architecture": "arm"})
    # The model recipe's dependency requirement accepts this agent version.
    from edge_agent.greengrass_runner.versions import satisfies

    assert satisfies(recipe.version, catalogue.agent_version_requirement)


def test_client_component_follows_the_guide_example() -> None:
    recipe = load_recipe(REPO / "greengrass/client/recipe.json")
    assert recipe.name == "com.lookoutvision.EdgeAgentPythonExample"
    by_name = {dependency.name: dependency for dependency in recipe.dependencies}
    model = by_name[recipe.default_configuration["ModelComponent"]]
    agent = by_name["aws.iot.lookoutvision.EdgeAgent"]  # its wheelhouse installs the client's libraries
    assert model.hard and agent.hard and set(by_name) == {model.name, agent.name}
    steps, _, artifacts = recipe.select({"os": "linux", "architecture": "amd64"})
    assert [a.filename for a in artifacts] == [
        "edge_agent_example.py",
        "edge_agent_pb2.py",
        "edge_agent_pb2_grpc.py",
    ]
    assert "{artifacts:path}/edge_agent_example.py" in steps["run"].script


def test_deployment_example_names_the_shipped_components() -> None:
    deployment = json.loads((REPO / "greengrass/deployment.json").read_text())
    assert deployment["targetArn"].startswith("arn:aws:iot:") and ":thinggroup/" in deployment["targetArn"]
    assert {"aws.iot.lookoutvision.EdgeAgent", "com.lookoutvision.EdgeAgentPythonExample"} <= set(
        deployment["components"]
    )
    for spec in deployment["components"].values():
        json.loads(spec["configurationUpdate"]["merge"])  # merge is a JSON string, as the API wants
