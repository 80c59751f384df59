"""Keeps a component's `run` step going after `edge-agent component run` has returned, as the nucleus would.

    python -m edge_agent.greengrass_runner.supervisor SPEC.json

SPEC (written by the kernel) holds the run, recover and shutdown steps and where to write status.
When the run process exits non-zero the component is ERRORED: the supervisor runs `recover`,
then `shutdown` (the nucleus stops an errored component before it starts it again), and starts
`run` again, until the third error within an hour makes it BROKEN (error_window.py). Exit 0 is
FINISHED. SIGUSR1 (the kernel is about to run `shutdown`) stops restarts;
SIGTERM (from `remove`) is passed on to the run step's process group and ends the
supervisor without a restart. Status: {"state": RUNNING|ERRORED|FINISHED|BROKEN, "errors": [...],
"exit_code": n, "runs": n, "child_pgid": n} (the kernel stops that group too if it outlives us).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from types import FrameType

from edge_agent.greengrass_runner.error_window import ErrorWindow
from edge_agent.greengrass_runner.process import (
    TIMEOUT_EXIT,
    StepCommand,
    log_line,
    run_foreground,
    spawn,
    terminate_group,
    write_json,
)

_stopping = False
_child_pgid: int | None = None


def _on_term(signum: int, frame: FrameType | None) -> None:
    global _stopping
    _stopping = True
    if _child_pgid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(_child_pgid, signal.SIGTERM)


def _on_stop_request(signum: int, frame: FrameType | None) -> None:
    """SIGUSR1: the kernel is about to run `shutdown`; when the run step ends now, do not start it again."""
    global _stopping
    _stopping = True


def supervise(spec: dict) -> int:
    global _child_pgid
    run = StepCommand.from_json(spec["run"])
    recover = StepCommand.from_json(spec["recover"]) if spec.get("recover") else None
    shutdown = StepCommand.from_json(spec["shutdown"]) if spec.get("shutdown") else None
    status_path = Path(spec["status"])
    window = ErrorWindow(spec.get("errors"))
    runs = 0

    def status(state: str, code: int | None = None) -> None:
        document = {"state": state, "errors": window.times, "exit_code": code, "runs": runs}
        write_json(status_path, {**document, "child_pgid": _child_pgid})

    while not _stopping:
        log_line(run.log, run.component, "run: starting" if runs == 0 else "run: starting again")
        process = spawn(run)
        _child_pgid = process.pid
        runs += 1
        status("RUNNING")
        if _stopping:  # SIGTERM arrived before the child's group was known
            os.killpg(process.pid, signal.SIGTERM)
        code = _wait(process, run.timeout_s)
        if _stopping:
            status("FINISHED", code)
            return 0
        log_line(run.log, run.component, f"run: exited with {code}")
        if code == 0:
            status("FINISHED", 0)
            return 0
        broken = window.record()
        if not broken:
            status("ERRORED", code)
            if recover is not None:
                run_foreground(recover)
        if shutdown is not None:
            run_foreground(shutdown)
        if broken:
            log_line(
                run.log, run.component, f"BROKEN: {len(window.times)} errors within an hour; deploy again"
            )
            status("BROKEN", code)
            return 1
    status("FINISHED")
    return 0


def _wait(process: subprocess.Popen[bytes], timeout_s: float | None) -> int:
    """The run step's exit code; a run Timeout (rarely set) ends it as an error, as in the nucleus."""
    try:
        return process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        terminate_group(process.pid, process)
        process.wait()
        return TIMEOUT_EXIT


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGTERM, _on_term)
    signal.signal(signal.SIGUSR1, _on_stop_request)
    spec = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    return supervise(spec)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
