"""s3:// references: mapped through an image root, or downloaded from a real (moto) S3 server.

The S3 server is moto's, run in this process on 127.0.0.1: boto3 talks HTTP to it as it would to
AWS, which cannot be reached from tests. No client is patched.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from dataset_files import CRACK, DatasetWriter

from edge_agent.dataset import DatasetError, load_dataset

BUCKET = "lookoutvision-us-east-1-0e205be246"
PREFIX = f"s3://{BUCKET}/getting-started"


def _s3_manifest(writer: DatasetWriter, images_dir: Path) -> Path:
    """Images under images_dir/training-images, masks under images_dir/mask-images; s3:// refs."""
    local = DatasetWriter(images_dir)
    lines = []
    for i in range(2):
        local.image(f"training-images/normal-{i}.png")
        lines.append(local.line(f"{PREFIX}/training-images/normal-{i}.png", "normal"))
    local.image("training-images/anomaly-0.png")
    local.mask("mask-images/anomaly-0.png", {CRACK: (0, 0, 10, 10)})
    lines.append(
        local.line(
            f"{PREFIX}/training-images/anomaly-0.png",
            "anomaly",
            mask_ref=f"{PREFIX}/mask-images/anomaly-0.png",
            colors={"cracked": CRACK},
        )
    )
    return writer.manifest(lines, "s3.manifest")


@pytest.mark.parametrize("layout", ["after-prefix", "key", "bucket-key"])
def test_image_root_maps_each_copy_layout(writer: DatasetWriter, tmp_path: Path, layout: str) -> None:
    root = tmp_path / "copy"
    images = {
        "after-prefix": root,  # aws s3 sync s3://bucket/getting-started root
        "key": root / "getting-started",  # aws s3 sync s3://bucket root
        "bucket-key": root / BUCKET / "getting-started",  # a copy of several buckets
    }[layout]
    manifest = _s3_manifest(writer, images)
    dataset = load_dataset(manifest, image_root=root)
    assert [s.image for s in dataset.samples] == [
        images / "training-images" / "normal-0.png",
        images / "training-images" / "normal-1.png",
        images / "training-images" / "anomaly-0.png",
    ]
    assert dataset.anomalous[0].mask == images / "mask-images" / "anomaly-0.png"
    assert dataset.samples[0].source_ref == f"{PREFIX}/training-images/normal-0.png"


def test_image_root_that_holds_nothing_lists_what_was_tried(writer: DatasetWriter, tmp_path: Path) -> None:
    manifest = _s3_manifest(writer, tmp_path / "elsewhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(
        DatasetError, match=r"s3\.manifest line 1: s3://.*normal-0\.png is not under --image-root"
    ):
        load_dataset(manifest, image_root=tmp_path / "empty")


def test_a_later_missing_file_names_where_it_should_be(writer: DatasetWriter, tmp_path: Path) -> None:
    manifest = _s3_manifest(writer, tmp_path / "copy")
    (tmp_path / "copy" / "training-images" / "normal-1.png").unlink()
    with pytest.raises(DatasetError, match=r"line 2: .* should be at .*copy/training-images/normal-1\.png"):
        load_dataset(manifest, image_root=tmp_path / "copy")


@pytest.fixture
def s3_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    yield endpoint
    server.stop()


def test_download_from_s3_into_the_cache(writer: DatasetWriter, tmp_path: Path, s3_server: str) -> None:
    import boto3

    manifest = _s3_manifest(writer, tmp_path / "upload")
    client = boto3.client("s3", endpoint_url=s3_server)
    client.create_bucket(Bucket=BUCKET)
    for path in (tmp_path / "upload").rglob("*.png"):
        key = f"getting-started/{path.relative_to(tmp_path / 'upload').as_posix()}"
        client.upload_file(str(path), BUCKET, key)
    client.upload_file(str(manifest), BUCKET, "datasets/train.manifest")

    cache = tmp_path / "cache"
    dataset = load_dataset(f"s3://{BUCKET}/datasets/train.manifest", cache_dir=cache)

    cached = cache / "s3" / BUCKET / "getting-started" / "training-images" / "anomaly-0.png"
    assert dataset.anomalous[0].image == cached
    assert cached.read_bytes() == (tmp_path / "upload" / "training-images" / "anomaly-0.png").read_bytes()
    assert dataset.labels[0].hex_color == CRACK
    assert dataset.source == f"s3://{BUCKET}/datasets/train.manifest"

    # A second import (of the cached manifest) reuses cached objects of the right size.
    cached_manifest = cache / "s3" / BUCKET / "datasets" / "train.manifest"
    mtime = cached.stat().st_mtime_ns
    load_dataset(cached_manifest, cache_dir=cache)
    assert cached.stat().st_mtime_ns == mtime


def test_missing_object_names_the_reference(writer: DatasetWriter, tmp_path: Path, s3_server: str) -> None:
    import boto3

    boto3.client("s3", endpoint_url=s3_server).create_bucket(Bucket=BUCKET)
    manifest = writer.manifest([writer.line(f"{PREFIX}/nothing.png", "normal")])
    with pytest.raises(DatasetError, match=r"line 1: cannot download s3://.*/nothing\.png"):
        load_dataset(manifest, cache_dir=tmp_path / "cache")


def test_no_credentials_says_to_pass_an_image_root(
    writer: DatasetWriter, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    manifest = writer.manifest([writer.line(f"{PREFIX}/a.png", "normal")])
    with pytest.raises(DatasetError, match=r"no AWS credentials are configured\. Pass --image-root"):
        load_dataset(manifest, cache_dir=tmp_path / "cache")
