"""Models by component name: discovery, background start, synchronous stop, admission to inference.

How this works:
- Entries come from `--model NAME=DIR` (static) and from the sub-directories of `--models-dir`.
  `sync()` rescans that folder; the daemon calls it from a poller and before List/Describe/Start,
  so a model component that appears or disappears is seen without a restart. A removed model
  that is running is stopped first.
- A component upgraded in place keeps its folder name while its files change (Greengrass runs the
  old version's shutdown and the new one's startup, often within one poll). Each entry remembers a
  fingerprint of its package's files (identity, size and mtime of each, links followed); when it
  changes, the entry is replaced by a fresh one, and a model that was running is started again.
- Each entry has its own lock, held only for quick state changes, never during a load or a run.
  StartModel checks the transition and the memory budget, sets STARTING and loads on a thread;
  the load ends in RUNNING or FAILED with a reason. A generation counter lets a load that lost a
  race with StopModel or removal discard its result.
- Inference is admitted through an `InferenceGate`: `concurrency` runs at once, each with its own
  preallocated input buffer, plus `queue_depth` waiting; one more is refused at once with
  OverloadedError (RESOURCE_EXHAUSTED), so an overloaded agent never queues without bound.
  StopModel closes the gate: requests still waiting are refused (FAILED_PRECONDITION), requests
  running finish, then the session is released.
- Locks: `_sync_lock` serialises folder scans (a stale listing never undoes a newer one);
  `_admission_lock` makes the memory check and the move to STARTING one step; each entry's `lock`
  guards its state. Order: admission -> entry -> registry (`_lock`).
"""

from __future__ import annotations

import logging
import os
import queue
import stat
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from edge_agent.errors import (
    AgentError,
    InvalidInputError,
    ModelNotFoundError,
    ModelStoppedError,
    OverloadedError,
    WrongStateError,
    shown,
)
from edge_agent.inference import Predictor
from edge_agent.lifecycle import Event, next_state, status_name
from edge_agent.model_package import MANIFEST_NAME, load
from edge_agent.protocol.edge_agent_pb2 import FAILED, RUNNING, STARTING, STOPPED, STOPPING
from edge_agent.runtime import RuntimeOptions, open_runtime
from edge_agent.runtime.run_width import narrow_runs

log = logging.getLogger(__name__)

MIB = 1 << 20
MEMORY_SAFETY_MARGIN_BYTES = 256 * MIB


@dataclass(frozen=True)
class RegistryConfig:
    backend: str = "cpu"
    runtime: RuntimeOptions = field(default_factory=RuntimeOptions)
    concurrency: int = 1  # runs of one model at the same time
    queue_depth: int = 8  # requests of one model waiting for a run slot
    memory_limit_bytes: int | None = None  # budget for all loaded models; None: the host's MemAvailable
    drain_timeout_s: float = 30.0  # StopModel waits this long for in-flight requests


@dataclass(frozen=True)
class ModelInfo:
    """What ListModels and DescribeModel report."""

    name: str
    arn: str
    status: int
    status_message: str


@dataclass(frozen=True)
class Slot:
    """A granted inference: the predictor and a private input buffer of the model's size."""

    predictor: Predictor
    buffer: np.ndarray


class InferenceGate:
    """Bounded admission for one model; each run slot owns one reusable input buffer."""

    def __init__(self, model: str, concurrency: int, queue_depth: int, buffer_bytes: int) -> None:
        self._model = model
        self._concurrency = concurrency
        self._capacity = concurrency + queue_depth
        self._in_flight = 0
        self._closed = False
        self._changed = threading.Condition()
        self._buffers: queue.SimpleQueue[np.ndarray] = queue.SimpleQueue()
        for _ in range(concurrency):
            self._buffers.put(np.empty(buffer_bytes, dtype=np.uint8))

    def enter(self) -> None:
        with self._changed:
            if self._in_flight >= self._capacity:
                raise OverloadedError(
                    f"model {shown(self._model)} already has {self._in_flight} requests in progress "
                    f"({self._concurrency} running, {self._capacity - self._concurrency} queued): "
                    "retry later, or start the agent with a larger --queue-depth"
                )
            self._in_flight += 1

    def leave(self) -> None:
        with self._changed:
            self._in_flight -= 1
            self._changed.notify_all()

    @contextmanager
    def run_slot(self) -> Iterator[np.ndarray]:
        buffer = self._buffers.get()
        try:
            if self._closed:
                raise ModelStoppedError(
                    f"model {shown(self._model)} was stopped while this request waited; start it again"
                )
            yield buffer
        finally:
            self._buffers.put(buffer)

    def close(self) -> None:
        """Refuse requests that have not started running yet; running ones finish."""
        self._closed = True

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def drain(self, timeout_s: float) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: self._in_flight == 0, timeout_s)


class _Entry:
    def __init__(self, name: str, directory: Path, static: bool) -> None:
        self.name = name
        self.directory = directory
        self.static = static
        self.lock = threading.Lock()
        self.status = STOPPED
        self.message = ""
        self.predictor: Predictor | None = None
        self.gate: InferenceGate | None = None
        self.memory_bytes = 0
        self.generation = 0
        self.removed = False
        self.fingerprint = package_fingerprint(directory)
        self._arn_cache: tuple[float, str, str] | None = None  # (manifest mtime, arn, problem)

    def manifest_facts(self) -> tuple[str, str]:
        """(model ARN, problem with the package or ''), cached by the manifest's mtime."""
        path = self.directory / MANIFEST_NAME
        try:
            mtime = path.stat().st_mtime
        except OSError:
            mtime = -1.0
        if self._arn_cache and self._arn_cache[0] == mtime:
            return self._arn_cache[1], self._arn_cache[2]
        try:
            arn, problem = load(self.directory).manifest.model_arn, ""
        except AgentError as exc:
            arn, problem = "", str(exc)
        except Exception as exc:  # one broken package must not fail ListModels for every model
            arn, problem = "", f"unreadable package: {type(exc).__name__}: {exc}"
        self._arn_cache = (mtime, arn, problem)
        return arn, problem

    def info(self) -> ModelInfo:
        arn, problem = self.manifest_facts()
        message = self.message
        if self.status == STOPPED and not message and problem:
            message = f"model package problem: {problem}"
        return ModelInfo(self.name, arn, self.status, message)


class ModelRegistry:
    def __init__(
        self,
        config: RegistryConfig,
        static_models: dict[str, Path] | None = None,
        models_dir: Path | None = None,
    ) -> None:
        self.config = config
        self.models_dir = models_dir
        self._lock = threading.Lock()
        self._sync_lock = threading.Lock()
        self._admission_lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}
        # listener(model component, status) after each state change; status None: removed
        self._listeners: list[Callable[[str, int | None], None]] = []
        for name, directory in (static_models or {}).items():
            self._entries[name] = _Entry(name, Path(directory), static=True)
            log.info("event=model_added model=%s source=static dir=%s", name, directory)
        self.sync()

    # discovery -----------------------------------------------------------------------------
    def sync(self) -> None:
        """Pick up model components added to, removed from or changed in the models folder, and
        packages of `--model` entries that changed."""
        with self._sync_lock:
            listing = self._list_models_dir() if self.models_dir is not None else None
            self._apply_listing(listing)

    def _list_models_dir(self) -> dict[str, Path] | None:
        """Sub-folders by name; None when the folder cannot be read now (for example the agent is out
        of file descriptors): the models keep their state rather than being taken for removed."""
        assert self.models_dir is not None
        found: dict[str, Path] = {}
        try:
            for path in self.models_dir.iterdir():
                if path.name.startswith("."):
                    continue
                try:
                    if not stat.S_ISDIR(path.stat().st_mode):
                        continue
                except FileNotFoundError:
                    continue  # gone, or a dangling link: not a model component
                except OSError:
                    pass  # there but unreadable now: listed, and its status message will say why
                found[path.name] = path
        except FileNotFoundError:
            return {}  # the folder itself is gone, and with it every component in it
        except OSError as exc:
            log.warning("event=models_dir_unreadable dir=%s reason=%r", self.models_dir, exc.strerror)
            return None
        return found

    def _apply_listing(self, found: dict[str, Path] | None) -> None:
        """`found`: the models folder's sub-folders, or None when there is none or it is unreadable now."""
        gone: list[_Entry] = []
        changed: list[tuple[_Entry, _Entry]] = []
        with self._lock:
            for name, path in (found or {}).items():
                if name not in self._entries:
                    self._entries[name] = _Entry(name, path, static=False)
                    log.info("event=model_added model=%s source=models_dir dir=%s", name, path)
                    self._notify(name, STOPPED)
            for name, entry in list(self._entries.items()):
                if not entry.static and found is not None and name not in found:
                    del self._entries[name]
                    gone.append(entry)
                elif self._package_changed(entry):
                    fresh = _Entry(name, entry.directory, entry.static)
                    self._entries[name] = fresh
                    changed.append((entry, fresh))
        for entry in gone:
            self._retire(entry)
        for old, fresh in changed:
            self._replace(old, fresh)

    @staticmethod
    def _package_changed(entry: _Entry) -> bool:
        now = package_fingerprint(entry.directory)
        if now is None:
            return False
        if entry.fingerprint is None:  # unreadable when the entry was made: take this as its state
            entry.fingerprint = now
            return False
        return now != entry.fingerprint

    def _replace(self, old: _Entry, fresh: _Entry) -> None:
        """The package under a known name changed: stop the old model, start the new one if the old ran."""
        with old.lock:
            was_active = old.status in (STARTING, RUNNING)
        log.info("event=model_changed model=%s restart=%s", old.name, was_active)
        self._retire(old)
        self._notify(fresh.name, STOPPED)  # the name is still deployed: known again, not running
        if not was_active:
            return
        try:
            self.start(fresh.name)
        except AgentError as exc:
            with fresh.lock:
                if fresh.status == STOPPED:
                    fresh.message = f"model package changed on disk; not restarted: {exc}"
            log.warning("event=model_restart_refused model=%s reason=%r", fresh.name, str(exc))

    def _retire(self, entry: _Entry) -> None:
        """Take an entry out of service for good (removed, or replaced by a newer package)."""
        with entry.lock:
            entry.removed = True
        self._cancel(entry)
        log.info("event=model_removed model=%s", entry.name)
        self._notify(entry.name, None)

    def _cancel(self, entry: _Entry) -> None:
        """Discard a load in progress and stop the model if it runs."""
        with entry.lock:
            entry.generation += 1
            running = entry.status == RUNNING
        if running:
            with suppress(AgentError):
                self._stop_entry(entry)

    def _get(self, name: str) -> _Entry:
        if not name:
            raise InvalidInputError(
                "model_component is empty: set it to the model's Greengrass component name"
            )
        with self._lock:
            entry = self._entries.get(name)
        if entry is None:
            raise ModelNotFoundError(
                f"no model component named {name!r} on this agent; ListModels shows the deployed ones"
            )
        return entry

    # observers (health, metrics) ---------------------------------------------------------------
    def add_listener(self, listener: Callable[[str, int | None], None]) -> None:
        """Call `listener` after every state change, from the thread that made it; it must not block."""
        self._listeners.append(listener)

    def _notify(self, name: str, status: int | None) -> None:
        for listener in self._listeners:
            try:
                listener(name, status)
            except Exception:
                log.exception("event=state_listener_error model=%s", name)

    def model_directory(self, name: str) -> Path:
        """The package directory of a known model component (for labels read from its manifest)."""
        return self._get(name).directory

    def in_flight(self) -> dict[str, int]:
        """DetectAnomalies requests running or queued, per RUNNING model."""
        with self._lock:
            entries = list(self._entries.values())
        return {e.name: e.gate.in_flight for e in entries if e.gate is not None}

    # queries ---------------------------------------------------------------------------------
    def list(self) -> list[ModelInfo]:
        with self._lock:
            entries = sorted(self._entries.values(), key=lambda e: e.name)
        return [e.info() for e in entries]

    def describe(self, name: str) -> ModelInfo:
        return self._get(name).info()

    # lifecycle -------------------------------------------------------------------------------
    def start(self, name: str) -> int:
        """StartModel: STOPPED|FAILED -> STARTING now, RUNNING|FAILED when the load ends."""
        entry = self._get(name)
        with self._admission_lock, entry.lock:
            if entry.removed:  # removed (and perhaps redeployed) since _get found it
                raise ModelNotFoundError(
                    f"model component {shown(name)} was removed while StartModel ran; ListModels shows the deployed ones"
                )
            target = next_state(name, entry.status, Event.START)
            entry.memory_bytes = self._admit_memory(entry)
            entry.status, entry.message = target, "loading the model"
            entry.generation += 1
            generation = entry.generation
        log.info("event=model_starting model=%s", name)
        self._notify(name, target)
        threading.Thread(
            target=self._load, args=(entry, generation), name=f"load-{name}", daemon=True
        ).start()
        return target

    def _estimate_bytes(self, entry: _Entry) -> int:
        """Rough memory a loaded model needs: weights twice (file + session) and once more for the CPU
        backend's second session (overlapping runs), float input copies per run."""
        try:
            package = load(entry.directory)
            graph_bytes = package.graph_path.stat().st_size
        except Exception:
            return 0  # the load will fail and say why
        input_bytes = package.manifest.input_bytes
        options = replace(self.config.runtime, parallel_runs=self.config.concurrency)
        sessions = 2 if self.config.backend == "cpu" and narrow_runs(options) is not None else 1
        return (1 + sessions) * graph_bytes + 5 * input_bytes * self.config.concurrency + 16 * MIB

    def _admit_memory(self, entry: _Entry) -> int:
        need = self._estimate_bytes(entry)
        with self._lock:
            others = [e for e in self._entries.values() if e is not entry]
        in_use = sum(e.memory_bytes for e in others if e.status in (STARTING, RUNNING, STOPPING))
        if self.config.memory_limit_bytes is not None:
            available = self.config.memory_limit_bytes - in_use
            where = f"of the agent's --memory-limit-mb {self.config.memory_limit_bytes // MIB} MiB"
        else:
            available = _mem_available_bytes() - MEMORY_SAFETY_MARGIN_BYTES
            where = "of the host's available memory"
        if need > available:
            raise OverloadedError(
                f"not enough memory to start model {entry.name!r}: it needs about {need // MIB} MiB and "
                f"{max(available, 0) // MIB} MiB {where} is free; stop another model first"
            )
        return need

    def _load(self, entry: _Entry, generation: int) -> None:
        started = time.monotonic()
        try:
            predictor, gate = self._open(entry, generation)
        except AgentError as exc:
            self._fail_load(entry, generation, str(exc))
            return
        except MemoryError:
            self._fail_load(
                entry, generation, "out of memory while loading the model; stop another model and retry"
            )
            return
        except Exception as exc:
            log.exception("event=model_load_error model=%s", entry.name)
            self._fail_load(
                entry, generation, f"unexpected error while loading the model: {type(exc).__name__}: {exc}"
            )
            return
        elapsed_ms = (time.monotonic() - started) * 1000
        with entry.lock:
            if entry.generation != generation or entry.status != STARTING or entry.removed:
                predictor.close()  # stopped, removed or restarted meanwhile
                return
            entry.predictor, entry.gate = predictor, gate
            entry.status = next_state(entry.name, entry.status, Event.LOADED)
            entry.message = f"running on {self.config.backend}; loaded in {elapsed_ms:.0f} ms"
        log.info("event=model_running model=%s load_ms=%.0f", entry.name, elapsed_ms)
        self._notify(entry.name, RUNNING)

    def _open(self, entry: _Entry, generation: int) -> tuple[Predictor, InferenceGate]:
        """Everything a load does that can fail: read, verify, open, warm up, allocate buffers."""
        package = load(entry.directory)
        package.verify_graph()
        options = replace(
            self.config.runtime,
            parallel_runs=self.config.concurrency,
            progress=lambda message: self._progress(entry, generation, message),
        )
        runtime = open_runtime(self.config.backend, package.graph_path, options)
        try:
            predictor = Predictor(package, runtime)
            manifest = package.manifest
            predictor.predict(np.zeros((manifest.height, manifest.width, 3), np.uint8))  # warm-up
            gate = InferenceGate(
                entry.name, self.config.concurrency, self.config.queue_depth, manifest.input_bytes
            )
        except BaseException:
            runtime.close()
            raise
        return predictor, gate

    def _progress(self, entry: _Entry, generation: int, message: str) -> None:
        """A slow load (a TensorRT engine build) says what it is doing; DescribeModel shows it."""
        with entry.lock:
            if entry.generation == generation and entry.status == STARTING:
                entry.message = message
        log.info("event=model_loading model=%s step=%r", entry.name, message)

    def _fail_load(self, entry: _Entry, generation: int, problem: str) -> None:
        with entry.lock:
            if entry.generation != generation or entry.status != STARTING:
                return
            entry.status = next_state(entry.name, entry.status, Event.LOAD_FAILED)
            entry.message = problem
            entry.memory_bytes = 0
        log.warning("event=model_failed model=%s reason=%r", entry.name, problem)
        self._notify(entry.name, FAILED)

    def stop(self, name: str) -> int:
        """StopModel: synchronous; STOPPING is visible to concurrent DescribeModel calls."""
        return self._stop_entry(self._get(name))

    def _stop_entry(self, entry: _Entry) -> int:
        with entry.lock:
            entry.status = next_state(entry.name, entry.status, Event.STOP)
            entry.message = "stopping: finishing requests in progress"
            predictor, gate = entry.predictor, entry.gate
        log.info("event=model_stopping model=%s", entry.name)
        self._notify(entry.name, STOPPING)
        if gate is not None:
            gate.close()
            if not gate.drain(self.config.drain_timeout_s):
                log.warning("event=model_stop_timeout model=%s in_flight=%d", entry.name, gate.in_flight)
        if predictor is not None:
            predictor.close()
        with entry.lock:
            entry.predictor, entry.gate, entry.memory_bytes = None, None, 0
            status = entry.status = next_state(entry.name, entry.status, Event.STOPPED)
            entry.message = ""
        log.info("event=model_stopped model=%s", entry.name)
        self._notify(entry.name, status)
        return status  # STOPPED, even if a StartModel follows at once

    # inference -------------------------------------------------------------------------------
    @contextmanager
    def inference(self, name: str, width: int, height: int) -> Iterator[Slot]:
        """Admit one DetectAnomalies call to a RUNNING model whose input size matches."""
        entry = self._get(name)
        with entry.lock:
            if entry.status != RUNNING or entry.predictor is None or entry.gate is None:
                raise WrongStateError(
                    f"model {shown(name)} is {status_name(entry.status)}; DetectAnomalies needs it RUNNING: "
                    "call StartModel and wait until DescribeModel reports RUNNING"
                )
            predictor, gate = entry.predictor, entry.gate
            manifest = predictor.manifest
            if (width, height) != (manifest.width, manifest.height):
                raise InvalidInputError(
                    f"bitmap is {width}x{height} but model {shown(name)} takes {manifest.width}x{manifest.height} "
                    "images (the size of its training images): resize before sending"
                )
            gate.enter()
        try:
            with gate.run_slot() as buffer:
                yield Slot(predictor, buffer)
        finally:
            gate.leave()

    def close(self) -> None:
        """Stop every running model, all at once (daemon shutdown)."""
        with self._lock:
            entries = list(self._entries.values())
        stoppers = [threading.Thread(target=self._cancel, args=(entry,)) for entry in entries]
        for thread in stoppers:
            thread.start()
        for thread in stoppers:
            thread.join()


def package_fingerprint(directory: Path) -> frozenset[tuple[str, int, int, int, int]] | None:
    """(name, device, inode, size, mtime) of each file of a package, links followed; None when the
    folder cannot be read now (for example out of file descriptors): unknown is not a change.

    Sub-folders are left out: the agent itself fills `engines/` (TensorRT cache), and that must not
    count as a new package. Files that vanish while listed count as absent, so a package being
    copied is fingerprinted again once complete.
    """
    files = []
    try:
        with os.scandir(directory) as entries:
            for item in entries:
                try:
                    st = item.stat()
                except FileNotFoundError:
                    continue
                if stat.S_ISREG(st.st_mode):
                    files.append((item.name, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns))
    except FileNotFoundError:
        return frozenset()
    except OSError:
        return None
    return frozenset(files)


def _mem_available_bytes() -> int:
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 1 << 62  # unknown: do not refuse


__all__ = ["FAILED", "InferenceGate", "ModelInfo", "ModelRegistry", "RegistryConfig", "Slot"]
