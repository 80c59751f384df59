"""The CLI's only writers to stdout/stderr for results and RPC failures."""

from __future__ import annotations

import json
import sys
from typing import Any

import grpc


def emit_json(obj: dict[str, Any]) -> None:
    """One JSON object per line on stdout, flushed so pipelines see results as they come."""
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def rpc_failure(what: str, exc: grpc.RpcError) -> int:
    code = exc.code() if hasattr(exc, "code") else None
    details = exc.details() if hasattr(exc, "details") else str(exc)
    if code == grpc.StatusCode.UNAVAILABLE:
        details = f"{details} (is the agent running on that socket?)"
    print(f"edge-agent {what}: {getattr(code, 'name', 'ERROR')}: {details}", file=sys.stderr)
    return 3 if code == grpc.StatusCode.UNAVAILABLE else 1
