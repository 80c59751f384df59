"""Where the runner finds component versions and artifacts, in the Greengrass CLI's local layout.

    <recipes dir>/*.json|*.yaml|*.yml           any file name; the recipe says name and version
    <artifacts dir>/<name>/<version>/<file>     looked up by the artifact URI's file name

That is what `greengrass-cli deployment create --artifactDir DIR` does: an artifact
`s3://bucket/prefix/model.zip` of component C 1.0.0 is DIR/C/1.0.0/model.zip, whatever the
bucket. An s3:// artifact not found there is downloaded (boto3, which honours AWS_ENDPOINT_URL
for S3-compatible servers). Recipes never get here with other schemes: recipe.py refuses them
as the nucleus does (file:// included).
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

from edge_agent.errors import AgentError
from edge_agent.greengrass_runner.recipe import Artifact, Recipe, RecipeError, load_recipe
from edge_agent.greengrass_runner.versions import satisfies

log = logging.getLogger(__name__)
RECIPE_SUFFIXES = (".json", ".yaml", ".yml")


class ResolutionError(AgentError):
    """No component version satisfies the requirements, or a dependency cycle."""


@dataclass
class ComponentStore:
    recipe_dirs: list[Path] = field(default_factory=list)
    artifact_dirs: list[Path] = field(default_factory=list)
    extra: list[Recipe] = field(default_factory=list)  # recipes given in memory (tests, deployments)

    def recipes(self) -> list[Recipe]:
        found: dict[tuple[str, str], Recipe] = {(r.name, r.version): r for r in self.extra}
        for folder in self.recipe_dirs:
            if not folder.is_dir():
                continue
            for path in sorted(folder.iterdir()):
                if path.suffix.lower() not in RECIPE_SUFFIXES:
                    continue
                try:
                    recipe = load_recipe(path)
                except RecipeError as exc:
                    log.warning("op=scan_recipes skipped=%s reason=%s", path, exc)
                    continue
                found.setdefault((recipe.name, recipe.version), recipe)
        return list(found.values())

    def best(self, name: str, requirements: list[str]) -> Recipe:
        versions = [r for r in self.recipes() if r.name == name]
        matching = [r for r in versions if all(satisfies(r.semver, req) for req in requirements)]
        if not matching:
            available = sorted(r.version for r in versions) or "none"
            raise ResolutionError(
                f"no version of component {name} satisfies {requirements}; available: {available}. "
                "Add its recipe with --recipes/--store"
            )
        return max(matching, key=lambda r: r.semver)

    def fetch(self, recipe: Recipe, artifact: Artifact, destination: Path) -> Path:
        """Copy one artifact to `destination` (a file path)."""
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.unlink(missing_ok=True)  # a read-only copy from an earlier deployment
        for folder in self.artifact_dirs:
            local = folder / recipe.name / recipe.version / artifact.filename
            if local.is_file():
                shutil.copyfile(local, destination)
                return destination
        where = (
            f"not in the artifact folders {[str(d) for d in self.artifact_dirs]} "
            f"(as {recipe.name}/{recipe.version}/{artifact.filename})"
        )
        if artifact.scheme == "s3":
            parsed = urlparse(artifact.uri)
            return _download_s3(
                parsed.netloc, unquote(parsed.path.lstrip("/")), destination, artifact.uri, where
            )
        if artifact.scheme == "docker":
            raise AgentError(
                f"{recipe.name} artifact {artifact.uri} is a Docker image: the runner does not pull images "
                "(the nucleus needs the Docker application manager for them); pull it with `docker pull` first "
                "and leave it out of the recipe you run locally"
            )
        raise AgentError(
            f"{recipe.name} artifact {artifact.uri} is {where}; greengrass: artifacts come from the Greengrass "
            "service, which the runner cannot reach: put the file there"
        )


def _download_s3(bucket: str, key: str, destination: Path, uri: str, where: str) -> Path:
    try:
        import boto3
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError:
        raise AgentError(
            f"artifact {uri} is {where}; downloading it needs boto3: pip install 'anomaly-edge-agent[s3]'"
        ) from None
    try:
        boto3.client("s3").download_file(bucket, key, str(destination))
    except (BotoCoreError, ClientError) as exc:
        raise AgentError(f"artifact {uri} is {where}, and downloading it failed: {exc}") from None
    return destination
