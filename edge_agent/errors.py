"""Domain errors of the agent.

Library code raises these; `edge_agent.server.status` maps each class to one gRPC status code,
and the CLI maps them to exit codes. This module imports nothing from grpc on purpose.
"""

from __future__ import annotations

import errno
import resource


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


class ResourceExhaustedError(OverloadedError):
    """The host is short of something the agent needs (space, descriptors, memory): not the client's fault."""


class ModelFailedError(AgentError):
    """A model package could not be loaded or run."""


class ModelPackageError(ModelFailedError):
    """A model package on disk is missing, corrupt or of an unsupported format."""


def shown(value: str, limit: int = 80) -> str:
    """A client-supplied string as it may appear in a message or log line: quoted, escaped, clipped."""
    clipped = value if len(value) <= limit else value[:limit] + f"... ({len(value)} characters)"
    return repr(clipped)


# errno values that report a shortage on the agent's side, never a mistake in the request.
RESOURCE_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS}
)


def shortage(exc: OSError, doing: str, where: str = "the file system") -> ResourceExhaustedError | None:
    """The ResourceExhaustedError for an OSError that reports a shortage, None for any other error.

    `doing` says what failed ("cannot write the mask into segment 'cam0'"), `where` names the file
    system the call used (for ENOSPC/EDQUOT: "/dev/shm").
    """
    code = exc.errno
    if code not in RESOURCE_ERRNOS:
        return None
    if code == errno.ENOSPC:
        what = f"{where} is full"
    elif code == errno.EDQUOT:
        what = f"the agent's disk quota on {where} is used up"
    elif code == errno.EMFILE:
        limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        what = f"the agent is out of file descriptors (its limit, ulimit -n, is {limit})"
    elif code == errno.ENFILE:
        what = "the system is out of file descriptors (fs.file-max)"
    elif code == errno.ENOBUFS:
        what = "the system is out of kernel buffer space"
    else:
        what = "the agent is out of memory"
    return ResourceExhaustedError(f"{doing}: {what}; this is a shortage on the agent's host: retry later")
