"""S3 output through boto3 against a real S3-compatible server (moto in server mode on loopback)."""

from __future__ import annotations

import json
import os
import pwd
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer

from edge_agent.greengrass_runner import ComponentStore, Kernel
from edge_agent.packager import GreengrassConfiguration, JobStore, PackagingRequest, start_job
from edge_agent.packager.job import ConflictError
from edge_agent.packager.output import OutputError, S3Output

BUCKET = "edge-models"


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    for key, value in {
        "AWS_ENDPOINT_URL": s3_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    client = boto3.client("s3")
    client.create_bucket(Bucket=BUCKET)
    yield client
    for item in client.list_objects_v2(Bucket=BUCKET).get("Contents", []):
        client.delete_object(Bucket=BUCKET, Key=item["Key"])
    client.delete_bucket(Bucket=BUCKET)


def test_package_to_s3_then_deploy_from_s3(s3, blob_model: Path, tmp_path: Path) -> None:
    config = GreengrassConfiguration(
        component_name="com.example.S3Model",
        target_platform={"Os": "LINUX", "Arch": "X86_64"},
        s3_output={"Bucket": BUCKET, "Prefix": "team/models"},
    )
    store = JobStore(tmp_path / "jobs.sqlite3")
    record = start_job(PackagingRequest(blob_model, config), store)
    assert record.status == "SUCCEEDED", record.status_message
    keys = sorted(item["Key"] for item in s3.list_objects_v2(Bucket=BUCKET)["Contents"])
    assert keys == [
        "team/models/artifacts/com.example.S3Model/1.0.0/model.zip",
        "team/models/recipes/com.example.S3Model-1.0.0.json",
        "team/models/recipes/com.example.S3Model-1.0.0.yaml",
    ]
    uri = f"s3://{BUCKET}/team/models/artifacts/com.example.S3Model/1.0.0/model.zip"
    assert record.output["Greengrass"]["Artifacts"] == [uri]
    recipe_text = s3.get_object(Bucket=BUCKET, Key=keys[1])["Body"].read()
    recipe = json.loads(recipe_text)
    assert recipe["Manifests"][0]["Artifacts"][0]["URI"] == uri
    size = s3.head_object(Bucket=BUCKET, Key=keys[0])["ContentLength"]
    assert size == record.output["Greengrass"]["ArtifactBytes"]

    # The same name and version cannot be published twice.
    with pytest.raises(ConflictError, match="already exists at s3://edge-models/team/models"):
        start_job(PackagingRequest(blob_model, config), store)

    # The recipe runner fetches the s3:// artifact and unpacks it (install only: the agent is not deployed).
    recipe["ComponentDependencies"] = {}
    recipe["Manifests"][0]["Lifecycle"] = {
        "install": "test -f {artifacts:decompressedPath}/model/manifest.json"
    }
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    (recipes / "model.json").write_text(json.dumps(recipe))
    kernel = Kernel(
        tmp_path / "root", ComponentStore(recipe_dirs=[recipes]), run_as=pwd.getpwuid(os.geteuid()).pw_name
    )
    assert kernel.deploy({"com.example.S3Model": "1.0.0"}) == ["com.example.S3Model"]
    assert kernel.list()[0]["state"] == "FINISHED"
    assert (kernel.root / "packages/artifacts/com.example.S3Model/1.0.0/model.zip").stat().st_size == size


def test_missing_bucket_is_a_clear_error(s3, tmp_path: Path) -> None:
    output = S3Output("s3://no-such-bucket/prefix")
    source = tmp_path / "f.txt"
    source.write_text("x")
    with pytest.raises(OutputError, match=r"cannot upload to s3://no-such-bucket/prefix/a/f\.txt"):
        output.put_file("a/f.txt", source)
    assert output.exists("a/f.txt") is False


class FailingRecipeS3Output(S3Output):
    """The real S3 output, losing its connection before the YAML recipe."""

    def put_text(self, relative: str, text: str) -> str:
        if relative.endswith(".yaml"):
            raise OutputError(f"cannot upload {relative}: connection reset")
        return super().put_text(relative, text)


def test_a_failed_s3_upload_deletes_what_it_wrote(s3, blob_model: Path, tmp_path: Path) -> None:
    config = GreengrassConfiguration(
        component_name="com.example.S3Half",
        target_platform={"Os": "LINUX", "Arch": "X86_64"},
        s3_output={"Bucket": BUCKET, "Prefix": "half"},
    )
    store = JobStore(tmp_path / "jobs.sqlite3")
    output = FailingRecipeS3Output(f"s3://{BUCKET}/half")
    record = start_job(PackagingRequest(blob_model, config), store, output=output)
    assert record.status == "FAILED" and "connection reset" in (record.status_message or "")
    assert s3.list_objects_v2(Bucket=BUCKET, Prefix="half/").get("KeyCount") == 0
    assert start_job(PackagingRequest(blob_model, config), store).status == "SUCCEEDED"
