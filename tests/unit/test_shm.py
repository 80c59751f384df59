"""SegmentCache on real /dev/shm segments (in-process: the daemon tests cover the cross-process case)."""

from __future__ import annotations

import errno
import os

import numpy as np
import pytest

from edge_agent.client import SharedMemoryBuffer
from edge_agent.errors import InvalidInputError, ResourceExhaustedError
from edge_agent.imaging.shm import (
    PARALLEL_READ_PART,
    SegmentCache,
    SegmentRef,
    _os_failure,
    _parts,
    segment_name,
)


@pytest.fixture
def cache():
    cache = SegmentCache(max_open=4)
    yield cache
    cache.close()


def test_reads_exactly_the_requested_range(cache):
    with SharedMemoryBuffer.create(100) as shm:
        shm.write(bytes(range(100)))
        out = np.empty(10, np.uint8)
        cache.read_into(SegmentRef(shm.name.lstrip("/"), 10, 40), memoryview(out), "f")
        assert out.tolist() == list(range(40, 50))


def test_large_frames_are_read_in_parallel_parts_byte_for_byte():
    """A 4096x4096 frame at an odd offset in a larger segment, read by three threads."""
    size = 4096 * 4096 * 3
    data = np.random.default_rng(0).integers(0, 256, size + 1000, dtype=np.uint8)
    cache = SegmentCache(read_threads=3)
    try:
        with SharedMemoryBuffer.create(len(data)) as shm:
            shm.write(data.tobytes())
            out = np.empty(size, np.uint8)
            cache.read_into(SegmentRef(shm.name.lstrip("/"), size, 7), memoryview(out), "f")
            assert np.array_equal(out, data[7 : 7 + size])
            with pytest.raises(InvalidInputError, match="holds"):
                cache.read_into(SegmentRef(shm.name.lstrip("/"), size, 1001), memoryview(out), "f")
    finally:
        cache.close()


@pytest.mark.parametrize(
    ("size", "threads", "count"),
    [
        (100, 4, 1),
        (2 * PARALLEL_READ_PART - 1, 4, 1),
        (2 * PARALLEL_READ_PART, 4, 2),
        (50_331_648, 2, 2),
        (50_331_648, 16, 16),
        (921_600, 2, 2),
    ],
)
def test_read_parts_tile_the_frame(size, threads, count):
    parts = _parts(size, threads)
    assert len(parts) == count
    assert parts[0][0] == 0 and parts[-1][1] == size
    assert all(end == start for (_, end), (start, _) in zip(parts, parts[1:]))
    assert all(end > start for start, end in parts)


def test_descriptor_is_reused_until_the_name_points_to_a_new_segment(cache):
    shm = SharedMemoryBuffer.create(10)
    ref = SegmentRef(shm.name.lstrip("/"), 10, 0)
    out = np.empty(10, np.uint8)
    cache.read_into(ref, memoryview(out), "f")
    cache.read_into(ref, memoryview(out), "f")
    assert cache.open_count() == 1
    shm.close()
    again = SharedMemoryBuffer.create(10, name=shm.name)
    again.write(b"\x05" * 10)
    cache.read_into(ref, memoryview(out), "f")
    assert out.tolist() == [5] * 10 and cache.open_count() == 1
    again.close()


def test_cache_is_bounded_and_closes_evicted_descriptors(cache):
    fds_before = len(os.listdir("/proc/self/fd"))
    buffers = [SharedMemoryBuffer.create(3) for _ in range(10)]
    out = np.empty(3, np.uint8)
    for shm in buffers:
        cache.read_into(SegmentRef(shm.name.lstrip("/"), 3, 0), memoryview(out), "f")
    assert cache.open_count() == 4
    for shm in buffers:
        shm.close()
    assert len(os.listdir("/proc/self/fd")) == fds_before + 4
    cache.close()
    assert len(os.listdir("/proc/self/fd")) == fds_before


def test_write_refuses_to_grow_a_segment(cache):
    with SharedMemoryBuffer.create(8) as shm:
        with pytest.raises(InvalidInputError, match="holds 8 bytes"):
            cache.write(SegmentRef(shm.name.lstrip("/"), 8, 4), memoryview(b"12345678"), "mask")
        assert os.stat(f"/dev/shm/{shm.name.lstrip('/')}").st_size == 8


@pytest.mark.parametrize("bad", ["", "/", "a/b", "..", ".", "x" * 256, "a\0b"])
def test_segment_names_that_are_not_one_component_are_refused(bad):
    with pytest.raises(InvalidInputError):
        segment_name(bad, "bitmap.shared_memory_handle")


def test_leading_slash_is_optional():
    assert segment_name("/cam", "f") == segment_name("cam", "f") == "cam"


def test_descriptors_of_unlinked_segments_are_dropped_and_their_memory_freed(cache):
    fds_before = len(os.listdir("/proc/self/fd"))
    kept = SharedMemoryBuffer.create(16)
    gone = SharedMemoryBuffer.create(16)
    out = np.empty(16, np.uint8)
    for shm in (kept, gone):
        cache.read_into(SegmentRef(shm.name.lstrip("/"), 16, 0), memoryview(out), "f")
    gone.close()  # the owner unlinks it and never names it again
    assert cache.open_count() == 2
    assert cache.drop_unlinked() == 1
    assert cache.open_count() == 1
    assert len(os.listdir("/proc/self/fd")) == fds_before + 2  # kept's own fd and the cache's
    cache.read_into(SegmentRef(kept.name.lstrip("/"), 16, 0), memoryview(out), "f")
    assert cache.drop_unlinked() == 0
    kept.close()


@pytest.mark.parametrize(
    ("code", "words"),
    [
        (errno.ENOSPC, "/dev/shm is full"),
        (errno.EMFILE, "out of file descriptors"),
        (errno.ENFILE, "the system is out of file descriptors"),
        (errno.ENOMEM, "out of memory"),
    ],
)
def test_shortages_on_the_agents_side_are_resource_exhausted(code, words):
    error = _os_failure(OSError(code, os.strerror(code)), "f: cannot open segment 'x'")
    assert isinstance(error, ResourceExhaustedError)
    assert words in str(error) and str(error).startswith("f: cannot open segment 'x'")


def test_other_os_errors_stay_the_clients():
    error = _os_failure(OSError(errno.ELOOP, os.strerror(errno.ELOOP)), "f: cannot open segment 'x'")
    assert type(error) is InvalidInputError and "symbolic links" in str(error)


def test_long_segment_names_are_clipped_in_messages(cache):
    name = "s" * 255
    with pytest.raises(InvalidInputError) as info:
        cache.read_into(SegmentRef(name, 10, 0), memoryview(np.empty(10, np.uint8)), "f")
    assert "s" * 81 not in str(info.value) and "(255 characters)" in str(info.value)
