"""Client frames read in place: read-only mappings of shared-memory segments, guarded against SIGBUS.

Copying a 4096x4096 frame out of its segment costs 5 ms on 2 cores, most of the agent's overhead
on large frames (bench/README.md). Mapping the segment avoids the copy, but a segment its owner
truncates while mapped turns the next read into SIGBUS. `_mapguard` (C, built with the package)
catches exactly those faults: it maps zero pages over the vanished part of a registered range and
flags it, so the call ends with INVALID_ARGUMENT instead of the agent dying. Without the compiled
module, `available()` is False and the agent copies frames as before.
"""

from __future__ import annotations

import hashlib
import mmap
from pathlib import Path
from typing import Any

import numpy as np

SOURCE = Path(__file__).with_name("_mapguard.c")


def source_digest() -> str:
    """SHA-256 of the shipped source: compiled into the module by build_guard, checked on import."""
    return hashlib.sha256(SOURCE.read_bytes()).hexdigest()


def _load() -> tuple[Any, str]:
    """The compiled guard if it was built from this package's `_mapguard.c`, else (None, why)."""
    try:
        from edge_agent.imaging import _mapguard as module
    except ImportError:  # not built on this machine (no compiler at install time): frames are copied
        return None, "not built (run edge-agent build-guard)"
    try:
        expected = source_digest()
    except OSError:
        return None, "its source _mapguard.c is missing from the package"
    if getattr(module, "SOURCE_SHA256", None) != expected:
        return None, "built from another version of _mapguard.c (run edge-agent build-guard)"
    return module, ""


_mapguard, UNAVAILABLE_REASON = _load()


def available() -> bool:
    return _mapguard is not None


def ensure_guard() -> None:
    """Put the SIGBUS handler in place (again, if something replaced it)."""
    if _mapguard is None:
        raise RuntimeError("edge_agent.imaging._mapguard is not built; frames cannot be read in place")
    _mapguard.install()


class GuardedMapping:
    """One read-only MAP_SHARED mapping of `[start, start + length)` of a segment, in the guard table.

    `users` and `retired` are kept by the owner (SegmentCache) under its lock; `close` when both say so.
    """

    def __init__(self, fd: int, start: int, length: int) -> None:
        if _mapguard is None:
            raise RuntimeError("edge_agent.imaging._mapguard is not built")
        self.start = start
        self.length = length
        self.users = 0
        self.retired = False
        self._slot, view = _mapguard.map(fd, start, length)
        self._array: np.ndarray | None = np.frombuffer(view, dtype=np.uint8)  # read-only

    def covers(self, start: int, end: int) -> bool:
        return self.start <= start and end <= self.start + self.length

    @property
    def faulted(self) -> bool:
        """True once a read past the segment's end was absorbed (the owner truncated it)."""
        return self._slot >= 0 and _mapguard.first_fault(self._slot) is not None

    def faulted_before(self, end: int) -> bool:
        """Whether a read past the segment's end hit a page below segment offset `end`."""
        first = _mapguard.first_fault(self._slot) if self._slot >= 0 else None
        return first is not None and self.start + first < end

    def view(self, offset: int, size: int) -> np.ndarray:
        assert self._array is not None, "view of a closed mapping"
        begin = offset - self.start
        return self._array[begin : begin + size]

    def close(self) -> None:
        """Unmap. Only when no call uses it: a view read after this would fault (SIGSEGV)."""
        slot, self._slot = self._slot, -1
        self._array = None
        if slot >= 0 and _mapguard is not None:
            _mapguard.unmap(slot)


def page_start(offset: int) -> int:
    return offset - offset % mmap.ALLOCATIONGRANULARITY
