"""`edge-agent component`: run Greengrass V2 components locally from their recipes.

    edge-agent component run NAME[=REQUIREMENT] ... [--root DIR] [--store DIR] [--recipes DIR]
                             [--artifacts DIR] [--deployment deployment.json] [--merge NAME=JSON]
    edge-agent component remove NAME ... [--root DIR] [--cascade]
    edge-agent component list   [--root DIR] [--json]

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
    parser.add_argument("action", choices=["run", "remove", "list"])
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


def run(args: argparse.Namespace) -> int:
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
