"""`edge-agent component`: run Greengrass V2 components locally from their recipes.

    edge-agent component run NAME[=REQUIREMENT] ... [--root DIR] [--store DIR] [--recipes DIR]
                             [--artifacts DIR] [--deployment deployment.json] [--merge NAME=JSON]
    edge-agent component remove NAME ... [--root DIR] [--cascade]
    edge-agent component list   [--root DIR] [--json]
    edge-agent component build-agent --bucket BUCKET [--prefix P] [--platform linux-x86_64|linux-aarch64]
                             [--python-version 3.8 ...] [--backend cpu|gpu|tensorrt ...] [--wheel WHEEL]
                             [--output DIR] [--upload]
        builds the agent component for offline devices (edge_agent.packager.agent_component)

The root folder mimics /greengrass/v2 (packages/, work/, logs/<component>.log).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from edge_agent.errors import InvalidInputError

ROOT_ENV = "EDGE_AGENT_GREENGRASS_ROOT"


def default_root() -> Path:
    override = os.environ.get(ROOT_ENV)
    if override:
        return Path(override)
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "edge-agent" / "greengrass-v2"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["run", "remove", "list", "build-agent"])
    parser.add_argument(
        "components",
        nargs="*",
        metavar="NAME[=REQUIREMENT]",
        help="right after the action, before the options",
    )
    parser.add_argument("--root", type=Path, help=f"root folder (default ${ROOT_ENV} or XDG data dir)")
    parser.add_argument(
        "--store",
        type=Path,
        action="append",
        default=[],
        help="folder with recipes/ and artifacts/ (package output)",
    )
    parser.add_argument("--recipes", type=Path, action="append", default=[], help="folder of recipe files")
    parser.add_argument(
        "--artifacts",
        type=Path,
        action="append",
        default=[],
        help="folder of <name>/<version>/<file> artifacts",
    )
    parser.add_argument(
        "--deployment", type=Path, help="deployment JSON as for create-deployment (components)"
    )
    parser.add_argument(
        "--merge",
        action="append",
        default=[],
        metavar="NAME=JSON",
        help="configuration merge for one component",
    )
    parser.add_argument("--thing-name", default="local-core-device", help="value of {iot:thingName}")
    parser.add_argument(
        "--cascade", action="store_true", help="remove: also remove components that depend on it"
    )
    parser.add_argument("--json", action="store_true", help="list: print JSON")
    build = parser.add_argument_group("build-agent")
    build.add_argument("--bucket", help="S3 bucket of the artifact URI (required)")
    build.add_argument(
        "--prefix", default="artifacts", help="key prefix in the bucket (default: %(default)s)"
    )
    build.add_argument(
        "--platform", default="linux-x86_64", help="linux-x86_64 or linux-aarch64 (default: %(default)s)"
    )
    build.add_argument(
        "--python-version",
        action="append",
        default=[],
        help="device CPython X.Y, 3.8 to 3.13; repeat for several (default: 3.8)",
    )
    build.add_argument(
        "--backend",
        action="append",
        default=[],
        help="wheels for this Backend: cpu, gpu (x86-64: onnxruntime-gpu), tensorrt; repeat (default: cpu)",
    )
    build.add_argument("--wheel", type=Path, help="the agent's wheel (default: built from this checkout)")
    build.add_argument("--output", type=Path, default=Path("agent-component"), help="default: %(default)s")
    build.add_argument(
        "--glibc", default="2.31", help="oldest device glibc (default: %(default)s, Ubuntu 20.04)"
    )
    build.add_argument(
        "--pip-option",
        action="append",
        default=[],
        help="extra option for pip download, e.g. --pip-option=--index-url=URL (a mirror)",
    )
    build.add_argument(
        "--add-to",
        type=Path,
        help="recipe of an earlier build for the other platform: write one recipe with both manifests",
    )
    build.add_argument("--upload", action="store_true", help="upload the ZIP to its s3:// URI (boto3)")


def run(args: argparse.Namespace) -> int:
    if args.action == "build-agent":
        return build_agent(args)
    from edge_agent.greengrass_runner import ComponentStore, ConfigurationUpdate, Kernel

    store = ComponentStore(
        recipe_dirs=[*args.recipes, *(s / "recipes" for s in args.store)],
        artifact_dirs=[*args.artifacts, *(s / "artifacts" for s in args.store)],
    )
    kernel = Kernel(args.root or default_root(), store, thing_name=args.thing_name)
    if args.action == "list":
        rows = kernel.list()
        if args.json:
            json.dump(rows, sys.stdout, indent=2)
            sys.stdout.write("\n")
        for row in [] if args.json else rows:
            print(f"{row['name']:<40} {row['version']:<10} {row['state']:<9} {row['log']}")
        return 0
    if args.action == "remove":
        if not args.components:
            raise InvalidInputError("component remove needs at least one NAME")
        for name in kernel.remove(args.components, cascade=args.cascade):
            print(f"removed {name}")
        return 0
    roots, updates = _deployment(args, ConfigurationUpdate)
    if not roots:
        raise InvalidInputError("component run needs NAME[=REQUIREMENT] arguments or --deployment FILE")
    # A deployment document is the whole set (a revision); NAME arguments add to what is deployed.
    for name in kernel.deploy(roots, updates, replace=args.deployment is not None):
        print(f"deployed {name}")
    return 0


def build_agent(args: argparse.Namespace) -> int:
    from edge_agent.packager.agent_component import AgentComponentRequest, build_agent_component, upload

    if not args.bucket:
        raise InvalidInputError("component build-agent needs --bucket (the S3 bucket the recipe points at)")
    built = build_agent_component(
        AgentComponentRequest(
            bucket=args.bucket,
            prefix=args.prefix,
            output=args.output,
            platform=args.platform,
            python_versions=tuple(args.python_version) or ("3.8",),
            backends=tuple(args.backend) or ("cpu",),
            wheel=args.wheel,
            glibc=args.glibc,
            pip_options=tuple(args.pip_option),
            add_to=args.add_to,
        )
    )
    print(f"recipe   {built.recipe_path}")
    print(f"artifact {built.archive} -> {built.artifact_uri}")
    for tag, sets in built.sets.items():
        print(f"wheels   {tag}: {', '.join(sets)}")
    commands = built.aws_commands()
    if args.upload:
        print(f"uploaded {upload(built)}")
        commands = commands[1:]
    print("publish with:")
    for command in commands:
        print(f"  {command}")
    return 0


def _deployment(args: argparse.Namespace, update_type: Any) -> tuple[dict[str, str], dict[str, Any]]:
    roots: dict[str, str] = {}
    updates: dict[str, Any] = {}
    if args.deployment:
        try:
            document = json.loads(args.deployment.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise InvalidInputError(f"--deployment {args.deployment}: {exc}") from None
        for name, spec in (document.get("components") or {}).items():
            roots[name] = str(spec.get("componentVersion") or "*")
            if spec.get("configurationUpdate"):
                updates[name] = update_type.from_json(spec["configurationUpdate"])
    for item in args.components:
        name, _, requirement = item.partition("=")
        roots[name] = requirement or "*"
    for item in args.merge:
        name, sep, text = item.partition("=")
        if not sep:
            raise InvalidInputError(f"--merge {item!r} must be NAME=JSON")
        updates[name] = update_type.from_json({"merge": text})
    return roots, updates
