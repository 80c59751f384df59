"""Turn manifest references (`s3://bucket/key` or paths) into local files.

With an image root, the root stands for one folder level of the bucket. For the first s3://
reference the resolver tries, in order, ROOT/BUCKET/KEY, ROOT/KEY, then ROOT/KEY without its first
folder, without its first two folders, and so on; the first candidate that exists fixes how many
leading folders are dropped, and every later reference is mapped the same way (a missing file is
then an error naming the path it should be at). So `s3://b/getting-started/training-images/x.jpg`
with root `cookies/` maps to `cookies/training-images/x.jpg`.

Without an image root, s3:// objects are downloaded with boto3 into a cache folder
(`$EDGE_AGENT_CACHE_DIR/s3/BUCKET/KEY`, default `~/.cache/edge-agent`) and reused while their size
matches the object's. Relative paths resolve against the image root if given, else the manifest's folder.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from edge_agent.dataset.errors import DatasetError

log = logging.getLogger(__name__)

CACHE_ENV = "EDGE_AGENT_CACHE_DIR"
_ROOT_AS_BUCKET = -1  # strip depth meaning ROOT/BUCKET/KEY


@dataclass(frozen=True)
class S3Ref:
    bucket: str
    key: str

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def parse_s3(ref: str) -> S3Ref | None:
    """S3Ref for `s3://bucket/key`, None for anything else."""
    if not ref.startswith("s3://"):
        return None
    bucket, _, key = ref[len("s3://") :].partition("/")
    if not bucket or not key or key.endswith("/"):
        raise DatasetError(f"reference {ref!r} is not s3://BUCKET/KEY of one object")
    return S3Ref(bucket, key)


def default_cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "edge-agent")


class Resolver:
    """Maps every reference of one manifest to a local path, consistently."""

    def __init__(self, base_dir: Path, image_root: Path | None = None, cache_dir: Path | None = None) -> None:
        # Absolute, so samples stay valid whatever the caller's working directory becomes.
        self.base_dir = base_dir.resolve()
        self.image_root = image_root.resolve() if image_root is not None else None
        self.cache_dir = cache_dir or default_cache_dir()
        self._depth: int | None = None
        self._client: Any = None

    def resolve(self, ref: str, where: str) -> Path:
        s3 = parse_s3(ref)
        if s3 is None:
            path = Path(ref).expanduser()
            return path if path.is_absolute() else (self.image_root or self.base_dir) / path
        if self.image_root is not None:
            return self._under_root(s3, where)
        return self.download(s3, where)

    def _candidate(self, s3: S3Ref, depth: int) -> Path | None:
        assert self.image_root is not None
        parts = PurePosixPath(s3.key).parts
        if depth == _ROOT_AS_BUCKET:
            return self.image_root / s3.bucket / Path(*parts)
        if depth >= len(parts):
            return None
        return self.image_root / Path(*parts[depth:])

    def _under_root(self, s3: S3Ref, where: str) -> Path:
        assert self.image_root is not None
        if self._depth is None:
            depths = [_ROOT_AS_BUCKET, *range(len(PurePosixPath(s3.key).parts))]
            tried = []
            for depth in depths:
                candidate = self._candidate(s3, depth)
                if candidate is None:
                    continue
                tried.append(str(candidate))
                if candidate.is_file():
                    self._depth = depth
                    log.info("op=resolve image_root=%s s3=%s local=%s", self.image_root, s3, candidate)
                    return candidate
            raise DatasetError(
                f"{where}: {s3} is not under --image-root {self.image_root} (tried {', '.join(tried)}): "
                "point --image-root at the local copy of the bucket or of a folder in it"
            )
        candidate = self._candidate(s3, self._depth)
        if candidate is None or not candidate.is_file():
            raise DatasetError(
                f"{where}: {s3} should be at {candidate} under --image-root {self.image_root} "
                "(mapped like the manifest's first reference) but that file does not exist: copy it there"
            )
        return candidate

    def download(self, s3: S3Ref, where: str) -> Path:
        """Fetch one object into the cache unless a copy of the same size is there already."""
        client = self._s3_client(s3, where)
        from botocore.exceptions import BotoCoreError, ClientError

        target = self.cache_dir / "s3" / s3.bucket / Path(*PurePosixPath(s3.key).parts)
        try:
            head = client.head_object(Bucket=s3.bucket, Key=s3.key)
            if target.is_file() and target.stat().st_size == head["ContentLength"]:
                return target
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(target.name + ".part")
            client.download_file(s3.bucket, s3.key, str(partial))
            partial.replace(target)
        except (ClientError, BotoCoreError) as exc:
            raise DatasetError(
                f"{where}: cannot download {s3} ({exc}): check the reference and your AWS access, "
                "or pass --image-root with a local copy"
            ) from None
        log.debug("op=download s3=%s local=%s", s3, target)
        return target

    def _s3_client(self, s3: S3Ref, where: str) -> Any:
        if self._client is not None:
            return self._client
        try:
            import boto3
        except ImportError:
            raise DatasetError(
                f"{where}: {s3} needs boto3 to download: pip install 'anomaly-edge-agent[s3]', "
                "or pass --image-root with a local copy of the images"
            ) from None
        session = boto3.session.Session()
        if session.get_credentials() is None:
            raise DatasetError(
                f"{where}: {s3} cannot be read: no AWS credentials are configured. Pass --image-root DIR "
                "pointing at a local copy of the images, or configure AWS access (aws configure)"
            )
        self._client = session.client("s3")
        return self._client
