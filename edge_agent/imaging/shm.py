"""Client POSIX shared-memory segments: read bitmaps from them, write masks into them.

Safety rules, each a named step below:
- Names: `name` or `/name`, one path component under /dev/shm; opened with O_NOFOLLOW and required
  to be a regular file, so a client cannot point the agent at other files through a symlink.
- Size: taken from fstat on every call; `offset + size` must fit, or the call fails INVALID_ARGUMENT.
- Access cannot kill the agent. Frames are read in place through read-only mappings only when the
  SIGBUS guard (`inplace`, compiled) is loaded: a read past the end of a segment its owner truncated
  lands on zero pages and flags the mapping, and the call fails INVALID_ARGUMENT. Without the guard,
  we `preadv` into a preallocated buffer and treat a short read the same way. Masks and segments the
  guard cannot take are never mapped.
- We never unlink, resize or write into a client's input segment. Masks are written with `pwrite`,
  only inside the range the client gave and the segment's current size. (If the owner shrinks the
  mask segment between our size check and the write, the write regrows it to offset + size: that
  touches only the caller's own segment, so it is accepted rather than paid for with an mmap.)
- Open descriptors are cached per name (clients reuse one segment frame after frame) and validated
  by inode on every call, so a segment deleted and recreated under the same name is reopened.
  The cache is bounded and reference counted: an evicted descriptor is closed by its last user.
  `drop_unlinked` (run by the daemon every poll interval) closes those of unlinked segments, so
  the agent never keeps a segment's memory alive after its owner removed it.
"""

from __future__ import annotations

import os
import stat
import threading
from collections import OrderedDict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from edge_agent.errors import InvalidInputError, shown
from edge_agent.imaging import inplace

SHM_ROOT = "/dev/shm"
NAME_MAX = 255
SEMAPHORE_PREFIX = "sem."  # where glibc keeps named semaphores in /dev/shm
MAX_OFFSET = (1 << 63) - 1
MAX_WHOLE_MAPPING = 1 << 30  # segments up to 1 GiB are mapped whole, larger ones frame by frame
PARALLEL_READ_PART = 256 << 10  # frames from 512 KiB (about 420x420) are read by several threads


@dataclass(frozen=True)
class SegmentRef:
    """A validated SharedMemoryHandle: `name` without the leading '/', as given by the client."""

    name: str
    size: int
    offset: int

    @property
    def path(self) -> str:
        return f"{SHM_ROOT}/{self.name}"


def segment_name(raw: str, field: str) -> str:
    """Accept `name` or `/name` (shm_open style); refuse anything that is not one component."""
    name = raw[1:] if raw.startswith("/") else raw
    if not name:
        raise InvalidInputError(f"{field}.name is empty: give the name passed to shm_open, e.g. '/camera0'")
    if "/" in name or "\0" in name or name in (".", "..") or len(name.encode()) > NAME_MAX:
        raise InvalidInputError(
            f"{field}.name {shown(raw)} is not a POSIX shared memory name: one component of at most "
            f"{NAME_MAX} bytes, no '/' after the leading one"
        )
    if name.startswith(SEMAPHORE_PREFIX):
        raise InvalidInputError(
            f"{field}.name {shown(raw)} names a POSIX semaphore, not a shared memory segment"
        )
    return name


def check_range(ref: SegmentRef, field: str) -> None:
    if ref.offset > MAX_OFFSET or ref.size > MAX_OFFSET or ref.offset + ref.size > MAX_OFFSET:
        raise InvalidInputError(f"{field}: offset {ref.offset} + size {ref.size} overflows a file offset")


class _Segment:
    def __init__(self, fd: int, inode: tuple[int, int]) -> None:
        self.fd = fd
        self.inode = inode
        self.users = 0
        self.evicted = False
        self.mapping: inplace.GuardedMapping | None = None


class SegmentCache:
    """Open descriptors (and guarded mappings) of client segments, reused across calls, safe against
    reuse races."""

    def __init__(
        self, max_open: int = 64, read_threads: int | None = None, in_place: bool | None = None
    ) -> None:
        """`in_place`: read frames through guarded mappings; None = whenever the guard is built."""
        if in_place and not inplace.available():
            raise RuntimeError(
                f"frames cannot be read in place: the SIGBUS guard is {inplace.UNAVAILABLE_REASON}"
            )
        self.in_place = inplace.available() if in_place is None else in_place
        self._max_open = max_open
        self._lock = threading.Lock()
        self._open: OrderedDict[tuple[str, bool], _Segment] = OrderedDict()
        self._read_threads = max(1, read_threads or os.cpu_count() or 1)
        self._read_pool: ThreadPoolExecutor | None = None
        self.fallback_copies = 0

    @contextmanager
    def frame(self, ref: SegmentRef, spare: np.ndarray, field: str) -> Iterator[np.ndarray]:
        """The frame's `ref.size` bytes as a read-only uint8 array, valid inside the block only.

        In place in the client's segment when the guard is loaded, else copied into `spare` (a
        uint8 buffer of `ref.size`). A segment truncated while the block runs fails the call when
        the block ends.
        """
        if not self.in_place:
            self.read_into(ref, memoryview(spare), field)
            yield spare
            return
        inplace.ensure_guard()
        with self._use(ref, writable=False, field=field) as segment:
            _require_fits(segment.fd, ref, ref.size, field)
            mapping = self._mapping_for(segment, ref)
            if mapping is None:  # the guard's table is full or mmap failed: copy this frame
                with self._lock:
                    self.fallback_copies += 1  # in-place mode, but this frame was copied (metrics)
                self._read_fd(segment.fd, ref, memoryview(spare), field)
                yield spare
                return
            try:
                yield mapping.view(ref.offset, ref.size)
            finally:
                # A cut inside the frame's last page faults nothing (the page still exists up to the
                # cut, zeros after it): the size check catches that one.
                end = ref.offset + ref.size
                shrank = mapping.faulted_before(end) or os.fstat(segment.fd).st_size < end
                self._leave_mapping(segment, mapping)
            if shrank:
                raise InvalidInputError(
                    f"{field}: shared memory segment {ref.name!r} shrank while the agent read it: "
                    "do not resize a segment during a call"
                )

    def read_into(self, ref: SegmentRef, out: memoryview, field: str) -> None:
        """Copy `ref.size` bytes at `ref.offset` of the segment into `out` (exactly that long).

        Frames are read in parallel parts, one per core, the calling thread reading the first: one
        thread's copy from /dev/shm runs at about 5 GB/s here, and two threads take 20% less time
        at 640x480 and half the time at 4096x4096 (48 MiB: 10 ms on one thread, 5 ms on two).
        """
        with self._use(ref, writable=False, field=field) as segment:
            _require_fits(segment.fd, ref, ref.size, field)
            self._read_fd(segment.fd, ref, out, field)

    def _read_fd(self, fd: int, ref: SegmentRef, out: memoryview, field: str) -> None:
        (first_start, first_end), *rest = _parts(ref.size, self._read_threads)
        jobs = [self._reader().submit(os.preadv, fd, [out[a:b]], ref.offset + a) for a, b in rest]
        # The calling thread reads the first part itself: one thread hand-off fewer.
        done = os.preadv(fd, [out[first_start:first_end]], ref.offset + first_start)
        done += sum(job.result() for job in jobs)  # a short part makes the sum short
        if done != ref.size:
            raise InvalidInputError(
                f"{field}: shared memory segment {ref.name!r} shrank while the agent read it "
                f"(got {done} of {ref.size} bytes): do not resize a segment during a call"
            )

    def write(self, ref: SegmentRef, data: memoryview, field: str) -> None:
        """Write `data` at `ref.offset`, refusing to grow the segment or pass the client's range."""
        if len(data) > ref.size:
            raise InvalidInputError(
                f"{field}.size is {ref.size} bytes; the mask needs {len(data)} (width*height*3)"
            )
        with self._use(ref, writable=True, field=field) as segment:
            _require_fits(segment.fd, ref, len(data), field)
            done = os.pwrite(segment.fd, data, ref.offset)
        if done != len(data):
            raise InvalidInputError(f"{field}: wrote only {done} of {len(data)} mask bytes to {ref.name!r}")

    def drop_unlinked(self) -> int:
        """Close cached descriptors of segments their owners have unlinked; returns how many.

        A descriptor keeps its segment's memory alive after shm_unlink, and a client that unlinks a
        segment never names it again, so without this the cache would pin it until evicted.
        """
        with self._lock:
            gone = []
            for key, segment in list(self._open.items()):
                try:
                    unlinked = os.fstat(segment.fd).st_nlink == 0
                except OSError:
                    unlinked = True
                if unlinked:
                    del self._open[key]
                    segment.evicted = True
                    gone.append(segment)
        for segment in gone:
            self._release_if_unused(segment)
        return len(gone)

    def open_count(self) -> int:
        """Descriptors currently held (leak tests watch this)."""
        with self._lock:
            return len(self._open)

    def close(self) -> None:
        with self._lock:
            segments = list(self._open.values())
            self._open.clear()
            pool, self._read_pool = self._read_pool, None
        if pool is not None:
            pool.shutdown(wait=True)
        for segment in segments:
            segment.evicted = True
            self._release_if_unused(segment)

    # internals -------------------------------------------------------------------------------
    def _mapping_for(self, segment: _Segment, ref: SegmentRef) -> inplace.GuardedMapping | None:
        """The segment's current mapping if it covers the frame, else a new one (the old one retires).

        A new mapping spans the whole segment (up to MAX_WHOLE_MAPPING), so that clients that
        alternate between frames at several offsets of one segment keep one mapping.
        """
        start, end = inplace.page_start(ref.offset), ref.offset + ref.size
        with self._lock:
            current = segment.mapping
            if current is not None and not current.faulted and current.covers(start, end):
                current.users += 1
                return current
        size = os.fstat(segment.fd).st_size
        if end <= size <= MAX_WHOLE_MAPPING:
            start, end = 0, size
        try:
            fresh = inplace.GuardedMapping(segment.fd, start, end - start)
        except (OSError, ValueError):
            return None
        with self._lock:
            old, segment.mapping = segment.mapping, fresh
            fresh.users = 1
            if old is not None:
                old.retired = True
            unused = old if old is not None and old.users == 0 else None
        if unused is not None:
            unused.close()
        return fresh

    def _leave_mapping(self, segment: _Segment, mapping: inplace.GuardedMapping) -> None:
        with self._lock:
            mapping.users -= 1
            if mapping.faulted:  # partly zero pages now: never serve another frame from it
                mapping.retired = True
                if segment.mapping is mapping:
                    segment.mapping = None
            done = mapping.retired and mapping.users == 0
        if done:
            mapping.close()

    def _reader(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._read_pool is None:
                self._read_pool = ThreadPoolExecutor(self._read_threads, thread_name_prefix="shm-read")
            return self._read_pool

    def _use(self, ref: SegmentRef, writable: bool, field: str) -> _Using:
        return _Using(self, self._acquire(ref, writable, field))

    def _acquire(self, ref: SegmentRef, writable: bool, field: str) -> _Segment:
        try:
            st = os.stat(ref.path, follow_symlinks=False)
        except FileNotFoundError:
            raise InvalidInputError(
                f"{field}: no shared memory segment named {ref.name!r}; create it (shm_open) before the call"
            ) from None
        except OSError as exc:
            raise InvalidInputError(f"{field}: cannot inspect segment {ref.name!r}: {exc.strerror}") from None
        inode = (st.st_dev, st.st_ino)
        key = (ref.name, writable)
        with self._lock:
            segment = self._open.get(key)
            if segment is not None and segment.inode == inode:
                self._open.move_to_end(key)
                segment.users += 1
                return segment
        fd = _open_segment(ref, writable, field)
        opened = os.fstat(fd)
        fresh = _Segment(fd, (opened.st_dev, opened.st_ino))
        fresh.users = 1
        evicted: list[_Segment] = []
        with self._lock:
            stale = self._open.pop(key, None)
            if stale is not None:
                evicted.append(stale)
            self._open[key] = fresh
            while len(self._open) > self._max_open:
                evicted.append(self._open.popitem(last=False)[1])
            for segment in evicted:
                segment.evicted = True
        for segment in evicted:
            self._release_if_unused(segment)
        return fresh

    def _release(self, segment: _Segment) -> None:
        with self._lock:
            segment.users -= 1
        self._release_if_unused(segment)

    def _release_if_unused(self, segment: _Segment) -> None:
        with self._lock:
            if not (segment.evicted and segment.users == 0 and segment.fd >= 0):
                return
            fd, segment.fd = segment.fd, -1
            mapping, segment.mapping = segment.mapping, None
        if mapping is not None:  # no users: every call through it has left
            mapping.close()
        os.close(fd)


class _Using:
    """Context manager yielding a cached segment while holding a reference to it."""

    def __init__(self, cache: SegmentCache, segment: _Segment) -> None:
        self._cache = cache
        self._segment = segment

    def __enter__(self) -> _Segment:
        return self._segment

    def __exit__(self, *exc: object) -> None:
        self._cache._release(self._segment)


def _open_segment(ref: SegmentRef, writable: bool, field: str) -> int:
    flags = (os.O_RDWR if writable else os.O_RDONLY) | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
    try:
        fd = os.open(ref.path, flags)
    except FileNotFoundError:
        raise InvalidInputError(
            f"{field}: no shared memory segment named {ref.name!r}; create it (shm_open) before the call"
        ) from None
    except PermissionError:
        mode = "read and write" if writable else "read"
        raise InvalidInputError(
            f"{field}: the agent may not {mode} segment {ref.name!r}: give the agent's user access "
            "(e.g. create it with mode 0660 and the ggc_group group)"
        ) from None
    except OSError as exc:
        raise InvalidInputError(f"{field}: cannot open segment {ref.name!r}: {exc.strerror}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise InvalidInputError(f"{field}: {ref.name!r} is not a shared memory segment")
    return fd


def _parts(size: int, threads: int) -> list[tuple[int, int]]:
    """[start, end) ranges of at least PARALLEL_READ_PART bytes, at most one per thread."""
    count = max(1, min(threads, size // PARALLEL_READ_PART))
    if count == 1:
        return [(0, size)]
    step = -(-size // count)
    return [(start, min(size, start + step)) for start in range(0, size, step)]


def _require_fits(fd: int, ref: SegmentRef, length: int, field: str) -> None:
    actual = os.fstat(fd).st_size
    if ref.offset + length > actual:
        raise InvalidInputError(
            f"{field}: segment {ref.name!r} holds {actual} bytes but offset {ref.offset} + size {length} "
            f"= {ref.offset + length}: make the segment larger or fix offset/size"
        )
