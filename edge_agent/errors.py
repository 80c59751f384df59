"""Domain errors of the agent.

Library code raises these; `edge_agent.server.status` maps each class to one gRPC status code,
and the CLI maps them to exit codes. This module imports nothing from grpc on purpose.
"""

from __future__ import annotations


class AgentError(Exception):
    """Base class: the message is shown to the caller, so it must say what to fix."""


class InvalidInputError(AgentError):
    """The request is malformed (field, value seen, allowed range in the message)."""


class ModelNotFoundError(AgentError):
    """No model component with that name is known to the agent."""


class WrongStateError(AgentError):
    """The model is not in a state that allows the operation."""


class ModelStoppedError(WrongStateError):
    """The model was stopped while a request waited for it."""


class OverloadedError(AgentError):
    """The agent cannot keep up: a queue is full or memory is short. Retry later."""


class ModelFailedError(AgentError):
    """A model package could not be loaded or run."""


class ModelPackageError(ModelFailedError):
    """A model package on disk is missing, corrupt or of an unsupported format."""


def shown(value: str, limit: int = 80) -> str:
    """A client-supplied string as it may appear in a message or log line: quoted, escaped, clipped."""
    clipped = value if len(value) <= limit else value[:limit] + f"... ({len(value)} characters)"
    return repr(clipped)
