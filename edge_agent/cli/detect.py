"""`edge-agent detect`: one JSON line per image, through a running agent or straight from a model dir.

Through the agent, pixels go through one shared-memory segment created once and reused for every
image (`--inline` sends bytes in the request instead). With `--model DIR` no daemon is needed;
both paths use the same Predictor code, so they print the same results.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import numpy as np

from edge_agent.cli.output import emit_json, rpc_failure
from edge_agent.client import DEFAULT_SOCKET, EdgeAgentClient, SharedMemoryBuffer
from edge_agent.errors import AgentError, InvalidInputError
from edge_agent.imaging.gallery import write_gallery
from edge_agent.imaging.overlay import read_rgb, save_mask_and_overlay, save_verdict
from edge_agent.inference import Detection, Predictor
from edge_agent.runtime import BACKENDS

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--component", help="model component name on the agent")
    target.add_argument("--model", type=Path, help="model package directory (no agent needed)")
    parser.add_argument("images", nargs="+", type=Path, metavar="IMAGE_OR_DIR")
    parser.add_argument("--socket", default=DEFAULT_SOCKET, help="agent socket (default: %(default)s)")
    parser.add_argument("--inline", action="store_true", help="send pixels in the request, not shared memory")
    parser.add_argument(
        "--mask-out", type=Path, help="write each image's mask and overlay PNG here, and a report.html of all"
    )
    parser.add_argument("--backend", default="cpu", choices=sorted(BACKENDS), help="runtime for --model")


def expand_images(paths: list[Path]) -> Iterator[Path]:
    """Files as given; folders expanded to their PNG/JPEG files in name order."""
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        else:
            yield path


def run(args: argparse.Namespace) -> int:
    images = list(expand_images(args.images))
    if not images:
        raise InvalidInputError("no PNG or JPEG images found in the paths given")
    if args.model is not None:
        predictor = Predictor.open(args.model, backend=args.backend)
        try:
            return _report(images, predictor.predict, args.mask_out)
        finally:
            predictor.close()
    with EdgeAgentClient(args.socket) as agent:
        if args.inline:
            return _report(images, lambda image: agent.detect(args.component, image), args.mask_out)
        largest = max(_pixel_bytes(p) for p in images)
        with SharedMemoryBuffer.create(largest) as shm:
            return _report(images, lambda image: agent.detect(args.component, image, shm=shm), args.mask_out)


def _pixel_bytes(path: Path) -> int:
    from PIL import Image

    try:
        with Image.open(path) as img:
            return img.width * img.height * 3
    except OSError:
        return 64 * 64 * 3  # unreadable: reported per image below


def _report(images: list[Path], detect: Callable[[np.ndarray], Detection], mask_out: Path | None) -> int:
    anomalous = failed = 0
    records: list[dict[str, object]] = []
    for index, path in enumerate(images):
        try:
            image = read_rgb(path)
            detection: Detection = detect(image)
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.UNAVAILABLE:
                return rpc_failure("detect", exc)
            failed += 1
            records.append({"image": str(path), "error": exc.details(), "code": exc.code().name})
            emit_json(records[-1])
            continue
        except (AgentError, OSError) as exc:
            failed += 1
            records.append({"image": str(path), "error": str(exc), "code": "INVALID_ARGUMENT"})
            emit_json(records[-1])
            continue
        anomalous += detection.is_anomalous
        record = {"image": str(path), **detection.to_json()}
        if mask_out is not None:
            stem = f"{index:04d}-{path.stem}"  # unique even when two folders hold the same file name
            if detection.mask is not None:
                mask_path, overlay_path = save_mask_and_overlay(image, detection.mask, mask_out, stem)
                record.update(mask=str(mask_path), overlay=str(overlay_path))
            else:
                record.update(overlay=str(save_verdict(image, detection.is_anomalous, mask_out, stem)))
        emit_json(record)
        records.append(record)
    if mask_out is not None:
        report = write_gallery(mask_out, records, "edge-agent detect")
        print(f"report: {report}", file=sys.stderr)
    print(
        f"{len(images)} images: {anomalous} anomalous, {len(images) - anomalous - failed} normal, {failed} failed",
        file=sys.stderr,
    )
    return 1 if failed else 0
