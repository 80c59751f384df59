"""`edge-agent build-guard`: compile the SIGBUS guard that lets the agent read frames in place.

Exit 0 when built (or already importable and --if-missing), 1 when it cannot be built here; the
agent works either way (docs/agent.md, "Shared memory").
"""

from __future__ import annotations

import argparse

from edge_agent.imaging import build_guard, inplace


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--if-missing", action="store_true", help="do nothing when a built guard is already there"
    )


def run(args: argparse.Namespace) -> int:
    if args.if_missing and inplace.available():  # built, and from this version's source
        print(f"build-guard: already built: {build_guard.target_path()}")
        return 0
    path = build_guard.build()
    print(f"build-guard: built {path}: the agent reads shared-memory frames in place")
    return 0
