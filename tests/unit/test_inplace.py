"""Frames read in place through guarded mappings: the SIGBUS guard, for real, in child processes.

Each scenario runs in its own interpreter: if the guard failed, that process would die of SIGBUS,
and the test reports it instead of the test runner dying.
"""

from __future__ import annotations

import glob
import os
import secrets
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import edge_agent.imaging
from edge_agent.client import SharedMemoryBuffer
from edge_agent.errors import InvalidInputError
from edge_agent.imaging import inplace
from edge_agent.imaging.shm import SegmentCache, SegmentRef
from tests.conftest import REPO

pytestmark = pytest.mark.skipif(not inplace.available(), reason="edge_agent.imaging._mapguard is not built")

PRELUDE = """
import faulthandler, os, sys, numpy as np
from edge_agent.client import SharedMemoryBuffer
from edge_agent.errors import InvalidInputError
from edge_agent.imaging.shm import SegmentCache, SegmentRef
SIZE = 1 << 20
PREFIX = sys.argv[1]  # the parent removes /dev/shm/PREFIX* afterwards: some children die on purpose
shm = SharedMemoryBuffer.create(SIZE, name=PREFIX + "a")
shm.write(np.full(SIZE, 7, np.uint8))
path = "/dev/shm/" + shm.name.lstrip("/")
ref = SegmentRef(shm.name.lstrip("/"), SIZE, 0)
cache = SegmentCache(in_place=True)
spare = np.empty(SIZE, np.uint8)


def cut_during_frame(keep=4096):
    # The owner cuts the segment to `keep` bytes while a frame is read: True if the call failed.
    try:
        with cache.frame(ref, spare, "f") as frame:
            os.truncate(path, keep)
            frame.sum()
    except InvalidInputError as exc:
        return "shrank while the agent read it" in str(exc)
    return False


def foreign_fault():
    # A SIGBUS outside the guard's mappings: a mapping of this process's own, cut, then read.
    import mmap
    other = SharedMemoryBuffer.create(SIZE, name=PREFIX + "b")
    fd = os.open("/dev/shm/" + other.name.lstrip("/"), os.O_RDWR)
    mapped = mmap.mmap(fd, SIZE)
    os.ftruncate(fd, 0)
    other.close()
    print("read", mapped[SIZE - 1])
"""


def run_child(body: str) -> subprocess.CompletedProcess[str]:
    code = PRELUDE + textwrap.dedent(body) + "\nshm.close()\n"
    prefix = f"edge-agent-inplace-{os.getpid()}-{secrets.token_hex(4)}-"
    try:
        return subprocess.run(
            [sys.executable, "-c", code, prefix], cwd=REPO, capture_output=True, text=True, timeout=60
        )
    finally:
        for leftover in glob.glob(f"/dev/shm/{prefix}*"):
            os.unlink(leftover)


def test_a_segment_truncated_while_mapped_fails_the_call_and_the_process_lives():
    result = run_child(
        """
        try:
            with cache.frame(ref, spare, "f") as frame:
                assert frame is not spare and not frame.flags.writeable
                assert int(frame[-1]) == 7
                os.truncate(path, SIZE // 2)  # the owner cuts the segment while the model reads it
                total = int(frame.sum(dtype=np.int64))  # pages past the cut read as zeros
            print("no error")
        except InvalidInputError as exc:
            print("error", total, "shrank while the agent read it" in str(exc))
        os.truncate(path, SIZE)  # the owner regrows and refills it: the next frame is right again
        shm.write(np.full(SIZE, 9, np.uint8))
        with cache.frame(ref, spare, "f") as frame:
            print("again", int(frame.min()), int(frame.max()))
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:2] == [f"error {7 * (1 << 19)} True", "again 9 9"]


def test_the_guard_is_put_back_after_faulthandler_replaced_it():
    result = run_child(
        """
        with cache.frame(ref, spare, "f"):
            pass
        faulthandler.enable()  # installs its own SIGBUS handler over ours
        print("survived", cut_during_frame())
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "survived True"


def test_faults_outside_guarded_mappings_still_kill_the_process():
    """The guard absorbs only reads of its own mappings; any other SIGBUS keeps its meaning."""
    result = run_child(
        """
        with cache.frame(ref, spare, "f"):
            pass  # the guard is installed
        foreign_fault()
        """
    )
    assert result.returncode == -signal.SIGBUS, (result.returncode, result.stdout, result.stderr)
    assert "read" not in result.stdout


def test_a_cut_inside_the_frames_last_page_fails_the_call_too():
    """No fault there (the page exists up to the cut): the size check after the run catches it."""
    result = run_child(
        """
        print(cut_during_frame(keep=SIZE - 1000))
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True"


def test_after_faulthandler_and_the_guard_put_back_a_foreign_fault_still_kills_at_once():
    """The two handlers must not hand the signal back and forth (it used to loop forever)."""
    result = run_child(
        """
        with cache.frame(ref, spare, "f"):
            pass
        faulthandler.enable()
        with cache.frame(ref, spare, "f"):
            pass  # the guard goes back in front of faulthandler
        foreign_fault()
        """
    )
    assert result.returncode == -signal.SIGBUS, (result.returncode, result.stdout, result.stderr[-500:])
    assert result.stderr.count("Bus error") <= 1


def test_a_foreign_fault_still_kills_after_faulthandler_was_disabled_behind_the_guard():
    """faulthandler first, then the guard, then faulthandler.disable() (it puts SIG_DFL back): the
    guard must fall back to SIG_DFL, not to a disabled handler that returns (that looped forever)."""
    result = run_child(
        """
        faulthandler.enable()
        with cache.frame(ref, spare, "f"):
            pass
        faulthandler.disable()
        with cache.frame(ref, spare, "f"):
            pass
        foreign_fault()
        """
    )
    assert result.returncode == -signal.SIGBUS, (result.returncode, result.stdout, result.stderr[-500:])


def test_a_cut_fails_only_the_frames_it_reaches():
    """Two frames of one segment in flight (one whole-segment mapping); the owner cuts the second."""
    result = run_child(
        """
        os.truncate(path, 2 * SIZE)
        first, second = SegmentRef(ref.name, SIZE, 0), SegmentRef(ref.name, SIZE, SIZE)
        block_a = cache.frame(first, spare, "f")
        a = block_a.__enter__()
        block_b = cache.frame(second, np.empty(SIZE, np.uint8), "f")
        b = block_b.__enter__()
        os.truncate(path, SIZE + 4096)
        b.sum(), a.sum()
        try:
            block_b.__exit__(None, None, None)
            print("second ok")
        except InvalidInputError:
            print("second shrank")
        block_a.__exit__(None, None, None)
        print("first ok")
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["second", "shrank", "first", "ok"]


def test_a_guard_built_from_another_source_is_not_used(monkeypatch):
    """A build left behind by another version of the package (pip does not remove it) is refused."""

    class Stale:
        SOURCE_SHA256 = "0" * 64

    monkeypatch.setitem(sys.modules, "edge_agent.imaging._mapguard", Stale)
    monkeypatch.setattr(edge_agent.imaging, "_mapguard", Stale, raising=False)
    module, reason = inplace._load()
    assert module is None and "another version" in reason


@pytest.mark.parametrize(("before", "survives"), [("SIG_IGN", True), ("SIG_DFL", False)])
def test_a_sent_sigbus_keeps_its_meaning_and_leaves_the_guard_in_place(before, survives):
    result = run_child(
        f"""
        import signal
        signal.signal(signal.SIGBUS, signal.{before})
        with cache.frame(ref, spare, "f"):
            pass
        os.kill(os.getpid(), signal.SIGBUS)
        print("guarded", cut_during_frame())
        """
    )
    if survives:
        assert result.returncode == 0 and result.stdout.strip() == "guarded True", result.stderr
    else:
        assert result.returncode == -signal.SIGBUS


def test_in_place_frames_follow_the_clients_writes_and_offsets():
    cache = SegmentCache(in_place=True)
    size = 3 * 4096 + 5
    spare = np.empty(size, np.uint8)
    try:
        with SharedMemoryBuffer.create(2 * size + 100) as shm:
            ref = SegmentRef(shm.name.lstrip("/"), size, 100 + size)  # not page-aligned
            for value in (3, 4):
                data = np.random.default_rng(value).integers(0, 255, 2 * size + 100, dtype=np.uint8)
                shm.write(data)
                with cache.frame(ref, spare, "f") as frame:
                    assert frame is not spare
                    assert np.array_equal(frame, data[100 + size : 100 + 2 * size])
    finally:
        cache.close()


def test_mappings_go_when_the_cache_lets_go_of_the_segment():
    def mapped(name: str) -> bool:
        with open("/proc/self/maps") as maps:
            return any(line.rstrip().endswith(f"/dev/shm/{name}") for line in maps)

    cache = SegmentCache(in_place=True)
    shm = SharedMemoryBuffer.create(8192)
    name = shm.name.lstrip("/")
    with cache.frame(SegmentRef(name, 8192, 0), np.empty(8192, np.uint8), "f"):
        assert mapped(name)
    assert mapped(name)  # kept for the next frame, as the descriptor is
    with cache.frame(SegmentRef(name, 4096, 4096), np.empty(4096, np.uint8), "f"):
        pass  # another offset of the same segment: the same, whole-segment mapping
    with open("/proc/self/maps") as maps:
        assert sum(line.rstrip().endswith(f"/dev/shm/{name}") for line in maps) == 1
    shm.close()  # the owner unlinks it
    assert cache.drop_unlinked() == 1
    assert not mapped(name)
    cache.close()


def test_a_mapping_that_cannot_be_made_falls_back_to_copying_that_frame(monkeypatch):
    """The guard's table full (or mmap refused): the frame is copied, and still checked."""

    def refuse(*args: object) -> None:
        raise OSError("the SIGBUS guard's table of mappings is full")

    monkeypatch.setattr(inplace, "GuardedMapping", refuse)
    cache = SegmentCache(in_place=True)
    try:
        with SharedMemoryBuffer.create(8192) as shm:
            data = np.random.default_rng(1).integers(0, 255, 8192, dtype=np.uint8)
            shm.write(data)
            spare = np.empty(4096, np.uint8)
            with cache.frame(SegmentRef(shm.name.lstrip("/"), 4096, 4096), spare, "f") as frame:
                assert frame is spare and np.array_equal(frame, data[4096:])
            past_the_end = SegmentRef(shm.name.lstrip("/"), 4096, 8000)
            refused = pytest.raises(InvalidInputError, match="holds 8192 bytes")
            with refused, cache.frame(past_the_end, spare, "f"):
                pass
    finally:
        cache.close()


def test_copy_mode_reads_into_the_spare_buffer():
    cache = SegmentCache(in_place=False)
    try:
        with SharedMemoryBuffer.create(4096) as shm:
            shm.write(np.full(4096, 5, np.uint8))
            spare = np.empty(4096, np.uint8)
            with cache.frame(SegmentRef(shm.name.lstrip("/"), 4096, 0), spare, "f") as frame:
                assert frame is spare and int(frame.max()) == 5
    finally:
        cache.close()
