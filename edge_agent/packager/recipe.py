"""Render the model component recipe from the catalogue's template (JSON and YAML forms).

The template is a JSON document whose strings carry `@@Name@@` tokens; rendering walks the parsed
structure and replaces tokens in keys and values, so no value can break the document's quoting.
"""

from __future__ import annotations

import json
import re
from typing import Any

from edge_agent.errors import AgentError
from edge_agent.packager.catalogue import Catalogue
from edge_agent.packager.config import PackagingSpec

_TOKEN = re.compile(r"@@([A-Za-z]+)@@")
MODEL_ARTIFACT = "model.zip"  # unarchives to {artifacts:decompressedPath}/model


def recipe_values(
    spec: PackagingSpec, catalogue: Catalogue, artifact_uri: str, agent_component: str
) -> dict[str, str]:
    target = spec.target
    return {
        "ComponentName": spec.component_name,
        "ComponentVersion": spec.component_version,
        "ComponentDescription": spec.component_description,
        "AgentComponent": agent_component,
        "AgentVersionRequirement": catalogue.agent_version_requirement,
        "ManifestName": target.label,
        "PlatformOs": catalogue.os_names[target.os],
        "PlatformArch": catalogue.arch_names[target.arch],
        "ArtifactUri": artifact_uri,
    }


def render(template: Any, values: dict[str, str]) -> Any:
    """Replace every @@Token@@ in keys and string values; an unknown token is an error."""
    if isinstance(template, dict):
        return {render(key, values): render(value, values) for key, value in template.items()}
    if isinstance(template, list):
        return [render(item, values) for item in template]
    if isinstance(template, str):

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in values:
                raise AgentError(f"recipe template uses unknown token @@{name}@@; known: {sorted(values)}")
            return values[name]

        return _TOKEN.sub(substitute, template)
    return template


def model_recipe(
    spec: PackagingSpec, catalogue: Catalogue, artifact_uri: str, agent_component: str
) -> dict[str, Any]:
    values = recipe_values(spec, catalogue, artifact_uri, agent_component)
    return render(catalogue.model_recipe_template(), values)


def to_json(recipe: dict[str, Any]) -> str:
    return json.dumps(recipe, indent=2) + "\n"


def to_yaml(recipe: dict[str, Any]) -> str:
    """YAML form; ComponentVersion and the format version stay strings (YAML would read 1.0 as a float)."""
    import yaml

    return "---\n" + yaml.safe_dump(recipe, sort_keys=False, default_flow_style=False, width=1000)
