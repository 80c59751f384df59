"""Where a packaging job writes: a local folder or s3://bucket/prefix (boto3).

Both use the Greengrass CLI's local-deployment layout, so `edge-agent component run` and
`greengrass-cli deployment create --recipeDir --artifactDir` read the result directly:

    <root>/recipes/<name>-<version>.json|.yaml
    <root>/artifacts/<name>/<version>/model.zip

The recipe's artifact URI is always s3:// (the nucleus refuses file:// and every other scheme
with UNSUPPORTED_ARTIFACT_SCHEME): for S3 output, where the job wrote it; for a folder, under
the S3 location the folder is staged for (the job's S3OutputLocation), else under
s3://YOUR-BUCKET. Local deployments read the folder and look the artifact up by its file name,
so they work with either; publishing (`create-component-version`) needs the real bucket, and
refuses YOUR-BUCKET (upper case is not a valid bucket name), so no recipe points at a stranger's.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Protocol

from edge_agent.errors import AgentError, InvalidInputError

log = logging.getLogger(__name__)


class OutputError(AgentError):
    """The output location cannot be read or written."""


class Output(Protocol):
    uri: str

    def artifact_uri(self, name: str, version: str, filename: str) -> str: ...

    def exists(self, relative: str) -> bool: ...

    def put_file(self, relative: str, source: Path) -> str: ...

    def put_text(self, relative: str, text: str) -> str: ...

    def delete(self, relative: str) -> None: ...


def recipe_key(name: str, version: str, suffix: str) -> str:
    return f"recipes/{name}-{version}.{suffix}"


def artifact_key(name: str, version: str, filename: str) -> str:
    return f"artifacts/{name}/{version}/{filename}"


UNPUBLISHED_LOCATION = "s3://YOUR-BUCKET"


def split_s3_uri(uri: str) -> tuple[str, str]:
    """`s3://bucket/prefix` -> (bucket, prefix without slashes at either end)."""
    bucket, _, prefix = uri[len("s3://") :].partition("/") if uri.startswith("s3://") else ("", "", "")
    if not bucket:
        raise InvalidInputError(f"S3 location {uri!r} names no bucket; expected s3://BUCKET/PREFIX")
    return bucket, prefix.strip("/")


class LocalOutput:
    """A folder, staged for upload to `s3_location` (s3://BUCKET/PREFIX) that the recipe's URIs name."""

    def __init__(self, root: Path, s3_location: str | None = None) -> None:
        self.root = root.resolve()
        self.uri = str(self.root)
        if s3_location:
            bucket, prefix = split_s3_uri(s3_location)
            self.s3_location = f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"
        else:
            self.s3_location = UNPUBLISHED_LOCATION

    def artifact_uri(self, name: str, version: str, filename: str) -> str:
        return f"{self.s3_location}/{artifact_key(name, version, filename)}"

    def exists(self, relative: str) -> bool:
        return (self.root / relative).exists()

    def put_file(self, relative: str, source: Path) -> str:
        path = self._prepare(relative)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        shutil.copyfile(source, tmp)
        os.replace(tmp, path)
        return str(path)

    def put_text(self, relative: str, text: str) -> str:
        path = self._prepare(relative)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
        return str(path)

    def delete(self, relative: str) -> None:
        (self.root / relative).unlink(missing_ok=True)

    def _prepare(self, relative: str) -> Path:
        path = self.root / relative
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create output folder {path.parent}: {exc.strerror}") from None
        return path


class S3Output:
    """s3://bucket/prefix through boto3 (endpoint from AWS_ENDPOINT_URL, credentials the usual way)."""

    def __init__(self, uri: str, client: object | None = None) -> None:
        self.bucket, self.prefix = split_s3_uri(uri)
        self.uri = f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"
        if client is None:
            try:
                import boto3
            except ImportError:
                raise OutputError("S3 output needs boto3: pip install 'anomaly-edge-agent[s3]'") from None
            client = boto3.client("s3")
        self.client = client

    def key(self, relative: str) -> str:
        return f"{self.prefix}/{relative}" if self.prefix else relative

    def artifact_uri(self, name: str, version: str, filename: str) -> str:
        return f"s3://{self.bucket}/{self.key(artifact_key(name, version, filename))}"

    def exists(self, relative: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self.key(relative))  # type: ignore[attr-defined]
            return True
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("404", "NoSuchKey", "NotFound"):
                return False
            raise OutputError(f"cannot read s3://{self.bucket}/{self.key(relative)}: {code or exc}") from None

    def put_file(self, relative: str, source: Path) -> str:
        from boto3.exceptions import Boto3Error
        from botocore.exceptions import BotoCoreError, ClientError

        key = self.key(relative)
        try:
            self.client.upload_file(str(source), self.bucket, key)  # type: ignore[attr-defined]
        except (Boto3Error, BotoCoreError, ClientError) as exc:
            raise OutputError(f"cannot upload to s3://{self.bucket}/{key}: {exc}") from None
        log.info("op=upload uri=s3://%s/%s", self.bucket, key)
        return f"s3://{self.bucket}/{key}"

    def put_text(self, relative: str, text: str) -> str:
        from botocore.exceptions import BotoCoreError, ClientError

        key = self.key(relative)
        try:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=text.encode("utf-8"))  # type: ignore[attr-defined]
        except (BotoCoreError, ClientError) as exc:
            raise OutputError(f"cannot upload to s3://{self.bucket}/{key}: {exc}") from None
        return f"s3://{self.bucket}/{key}"

    def delete(self, relative: str) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        key = self.key(relative)
        try:
            self.client.delete_object(Bucket=self.bucket, Key=key)  # type: ignore[attr-defined]
        except (BotoCoreError, ClientError) as exc:
            raise OutputError(f"cannot delete s3://{self.bucket}/{key}: {exc}") from None


def open_output(uri: str, s3_location: str | None = None) -> Output:
    """S3 output for s3:// URIs; otherwise a folder whose recipes point at `s3_location`."""
    if uri.startswith("s3://"):
        return S3Output(uri)
    return LocalOutput(Path(uri), s3_location)
