"""`edge-agent package`: model packaging jobs (create, list, describe).

edge-agent package MODEL_DIR --component-name NAME (--target-device D | --target-platform ...) --output DIR|s3://B/P
edge-agent package list [--max-results N] [--status S]
edge-agent package describe JOB
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from edge_agent.errors import InvalidInputError

SUBCOMMANDS = ("list", "describe")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.usage = (
        "edge-agent package MODEL_DIR --component-name NAME (--target-device D | --target-platform P) "
        "--output DIR|s3://BUCKET/PREFIX [options]\n"
        "       edge-agent package list [--max-results N] [--status STATUS]\n"
        "       edge-agent package describe JOB"
    )
    parser.add_argument("words", nargs="+", metavar="MODEL_DIR | list | describe JOB")
    job = parser.add_argument_group("packaging job")
    job.add_argument("--component-name", help="Greengrass component name, [a-zA-Z0-9-_.]+, at most 128")
    job.add_argument("--component-version", help="major.minor.patch; default <model version>.0.0")
    job.add_argument("--component-description")
    job.add_argument("--target-device", help="a device from packaging/targets.json, e.g. jetson_xavier")
    job.add_argument("--target-platform", help="os=LINUX,arch=X86_64|ARM64[,accelerator=NVIDIA]")
    job.add_argument(
        "--compiler-options",
        help='JSON, e.g. \'{"gpu-code": "sm_75", "trt-ver": "8.6.1", "cuda-ver": "12.2"}\'',
    )
    job.add_argument(
        "--tag", action="append", default=[], metavar="KEY=VALUE", help="component tag (repeatable)"
    )
    job.add_argument("--output", help="folder or s3://BUCKET/PREFIX")
    job.add_argument(
        "--configuration", help="StartModelPackagingJob's Greengrass={...} shorthand or JSON (file:// too)"
    )
    job.add_argument("--job-name", help="default: a UUID")
    job.add_argument("--description", default="", help="job description")
    job.add_argument(
        "--agent-component", help="agent component the model depends on (default from the catalogue)"
    )
    job.add_argument(
        "--quantize",
        action="store_true",
        help="try int8 (needs --sample-images); kept only if it agrees with float",
    )
    job.add_argument(
        "--sample-images", type=Path, help="images of the model's size for calibration and checks"
    )
    listing = parser.add_argument_group("list")
    listing.add_argument("--max-results", type=int)
    listing.add_argument("--next-token", help="token printed by the previous page")
    listing.add_argument("--status", choices=["CREATED", "RUNNING", "SUCCEEDED", "FAILED"])
    parser.add_argument(
        "--jobs-db", type=Path, help="jobs database (default $EDGE_AGENT_JOBS_DB or XDG data dir)"
    )
    parser.add_argument("--json", action="store_true", help="print JSON")


def run(args: argparse.Namespace) -> int:
    from edge_agent.packager.jobs import JobStore

    store = JobStore(args.jobs_db)
    verb = args.words[0]
    if verb == "list":
        _expect_words(args, 1)
        records, token = store.page(args.max_results, args.status, args.next_token)
        return _print_list(records, token, args.json)
    if verb == "describe":
        _expect_words(args, 2)
        return _print(store.get(args.words[1]).to_json())
    _expect_words(args, 1)
    return _start(args, store)


def _expect_words(args: argparse.Namespace, count: int) -> None:
    if len(args.words) != count:
        raise InvalidInputError(
            f"package {args.words[0]!r} takes {count - 1} argument(s); got {args.words[1:]!r}"
            if args.words[0] in SUBCOMMANDS
            else f"give one MODEL_DIR; got {args.words!r}"
        )


def _start(args: argparse.Namespace, store: Any) -> int:
    from edge_agent.packager import GreengrassConfiguration, PackagingRequest, start_job
    from edge_agent.packager.config import parse_platform_flag, parse_tag_flag
    from edge_agent.packager.shorthand import parse_configuration

    flags = GreengrassConfiguration(
        target_device=args.target_device,
        target_platform=parse_platform_flag(args.target_platform) if args.target_platform else None,
        compiler_options=args.compiler_options,
        component_name=args.component_name,
        component_version=args.component_version,
        component_description=args.component_description,
        tags=[parse_tag_flag(tag) for tag in args.tag] or None,
    )
    config = flags
    if args.configuration:
        text = args.configuration
        if text.startswith("file://"):
            path = Path(text[len("file://") :])
            try:
                text = path.read_text(encoding="utf-8")
            except OSError as exc:
                raise InvalidInputError(f"--configuration file {path}: {exc.strerror}") from None
        config = flags.merged_with(GreengrassConfiguration.from_document(parse_configuration(text)))
    request = PackagingRequest(
        model_dir=Path(args.words[0]),
        configuration=config,
        output=args.output,
        job_name=args.job_name,
        description=args.description,
        agent_component=args.agent_component,
        quantize=args.quantize,
        sample_images=args.sample_images,
    )
    record = start_job(request, store)
    _print(record.to_json())
    return 0 if record.status == "SUCCEEDED" else 1


def _print(document: dict[str, Any]) -> int:
    json.dump(document, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


def _print_list(records: list[Any], next_token: str | None, as_json: bool) -> int:
    if as_json:
        rows = [
            {
                k: r.to_json()[k]
                for k in ("JobName", "Status", "StatusMessage", "CreationTimestamp", "EndTimestamp")
            }
            | {"ComponentName": r.request.get("Greengrass", {}).get("ComponentName")}
            for r in records
        ]
        return _print({"ModelPackagingJobs": rows, "NextToken": next_token})
    for r in records:
        greengrass = r.request.get("Greengrass", {})
        name = f"{greengrass.get('ComponentName')} {greengrass.get('ComponentVersion')}"
        print(f"{r.job_name}  {r.status:<9}  {r.created_at}  {name}  {r.status_message}")
    if next_token:
        print(f"more: --next-token {next_token}")
    return 0
