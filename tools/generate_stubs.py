"""Regenerate the committed gRPC stubs in edge_agent/protocol/ from proto/edge-agent.proto.

The stubs are committed so that the agent installs without grpcio-tools; the unit test
tests/unit/test_protocol_stubs.py fails when they no longer match the proto.
Run: python tools/generate_stubs.py
"""

from __future__ import annotations

import sys
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parents[1]
PROTO_DIR = ROOT / "proto"
# Mapping the proto folder to edge_agent/protocol makes the generated imports package-relative.
VIRTUAL_DIR = "edge_agent/protocol"


def protoc_args(*outputs: str) -> list[str]:
    """protoc command line that maps proto/ onto the edge_agent.protocol package."""
    include = str(Path(protoc.__file__).parent / "_proto")
    return [
        "protoc",
        f"-I{VIRTUAL_DIR}={PROTO_DIR}",
        f"-I{include}",
        *outputs,
        f"{VIRTUAL_DIR}/edge-agent.proto",
    ]


def main() -> int:
    args = protoc_args(f"--python_out={ROOT}", f"--pyi_out={ROOT}", f"--grpc_python_out={ROOT}")
    return protoc.main(args)


if __name__ == "__main__":
    sys.exit(main())
