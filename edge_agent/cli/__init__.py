"""The `edge-agent` command: parse, build a config, call one library function.

Each verb lives in its own module, imported only when used, so `edge-agent serve` never
imports torch. Exit codes: 0 success, 1 user error, 2 usage, 3 daemon failed to start.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import platform
import sys
from collections.abc import Sequence

from edge_agent import __version__
from edge_agent.errors import AgentError

# verb -> (module, one-line help). Each module defines add_arguments(parser) and run(args) -> int.
COMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("edge_agent.cli.serve", "run the Edge Agent daemon on a Unix socket"),
    "models": ("edge_agent.cli.models", "list, describe, start and stop models on a running agent"),
    "detect": ("edge_agent.cli.detect", "detect anomalies in images, through an agent or a model directory"),
    "train": ("edge_agent.cli.train", "train a model package from a Lookout for Vision dataset"),
    "evaluate": ("edge_agent.cli.evaluate", "evaluate a model package on a dataset"),
    "dataset": ("edge_agent.cli.dataset", "import, validate and convert datasets"),
    "package": ("edge_agent.cli.package", "model packaging jobs: Greengrass V2 model components"),
    "component": ("edge_agent.cli.component", "run Greengrass component lifecycles locally"),
    "build-guard": (
        "edge_agent.cli.build_guard",
        "compile the SIGBUS guard for in-place shared-memory frames",
    ),
}

LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR"]
# Workstation verbs: they need Python >= 3.10 and the libraries of an extra, which a plain (device)
# install does not have. verb -> (extra, modules that extra installs). The other verbs are the device
# runtime and run on every supported Python with the plain install.
WORKSTATION_PYTHON = (3, 10)
WORKSTATION: dict[str, tuple[str, tuple[str, ...]]] = {
    "train": ("train", ("torch", "onnx")),
    "evaluate": ("train", ()),
    "dataset": ("train", ()),
    "package": ("package", ("onnx", "yaml")),
    "component": ("greengrass", ("yaml", "semantic_version", "jsonpointer")),
}

EXIT_OK, EXIT_USER_ERROR, EXIT_USAGE, EXIT_DAEMON_FAILED = 0, 1, 2, 3


def workstation_problem(verb: str) -> str | None:
    """Why `verb` cannot run in this environment (old Python, extra not installed), or None."""
    if verb not in WORKSTATION:
        return None
    extra, modules = WORKSTATION[verb]
    if sys.version_info[:2] < WORKSTATION_PYTHON:
        return (
            f"'edge-agent {verb}' runs on a workstation with Python >= "
            f"{'.'.join(map(str, WORKSTATION_PYTHON))}; this is Python {platform.python_version()}, "
            "where only the device runtime (serve, models, detect, build-guard) runs"
        )
    missing = [name for name in modules if not _installed(name)]
    if missing:
        return (
            f"'edge-agent {verb}' needs the '{extra}' extra (missing: {', '.join(missing)}): "
            f"pip install 'anomaly-edge-agent[{extra}]'"
        )
    return None


def _available_commands() -> dict[str, tuple[str, str]]:
    return {verb: spec for verb, spec in COMMANDS.items() if importlib.util.find_spec(spec[0]) is not None}


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a broken install counts as missing
        return False


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edge-agent", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--log-level", default="INFO", choices=LEVELS)
    parser.add_argument(
        "--grpc-log-level",
        choices=LEVELS,
        help="level of gRPC's own Python loggers (default: --log-level, but at least INFO: at DEBUG, "
        "gRPC logs a line per call)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for verb, (module_name, help_text) in _available_commands().items():
        command = sub.add_parser(verb, help=help_text, description=help_text)
        command.set_defaults(_module=module_name)
        importlib.import_module(module_name).add_arguments(command)
    return parser


def configure_logging(level: str, grpc_level: str | None = None) -> None:
    """One line per event: time, level, logger, then the event's key=value fields.

    gRPC's aio module logs "Loaded running loop" at DEBUG for every call (1,729 lines in a short
    test run), which buries the agent's own DEBUG lines: its loggers stay at INFO unless asked.
    """
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    if grpc_level is None:
        grpc_level = max(logging.getLevelName(level), logging.INFO)
    logging.getLogger("grpc").setLevel(grpc_level)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.log_level, args.grpc_log_level)
    problem = workstation_problem(args.command)
    if problem is not None:
        print(f"edge-agent {args.command}: error: {problem}", file=sys.stderr)
        return EXIT_USER_ERROR
    module = importlib.import_module(args._module)
    try:
        return int(module.run(args) or 0)
    except AgentError as exc:
        print(f"edge-agent {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
