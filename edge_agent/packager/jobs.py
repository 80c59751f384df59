"""Packaging job records in SQLite, so `package list/describe` survive restarts.

Status moves CREATED -> RUNNING -> SUCCEEDED | FAILED (the Lookout for Vision enum); each record
keeps a status message, creation/start/end times, the request and the output details.
Default file: $EDGE_AGENT_JOBS_DB, else $XDG_DATA_HOME/edge-agent/jobs.sqlite3
(~/.local/share/edge-agent/jobs.sqlite3).
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edge_agent.errors import AgentError, InvalidInputError

JOBS_DB_ENV = "EDGE_AGENT_JOBS_DB"
STATUSES = ("CREATED", "RUNNING", "SUCCEEDED", "FAILED")
_TRANSITIONS = {"CREATED": {"RUNNING", "FAILED"}, "RUNNING": {"SUCCEEDED", "FAILED"}}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    job_name TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    status_message TEXT NOT NULL DEFAULT '',
    description TEXT NOT NULL DEFAULT '',
    model_dir TEXT NOT NULL,
    request TEXT NOT NULL,
    output TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL,
    started_at TEXT,
    ended_at TEXT
)
"""


class JobNotFoundError(AgentError):
    """No packaging job with that name in the jobs database."""


@dataclass(frozen=True)
class JobRecord:
    job_name: str
    status: str
    status_message: str
    description: str
    model_dir: str
    request: dict[str, Any]
    created_at: str
    started_at: str | None = None
    ended_at: str | None = None
    output: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """ModelPackagingDescription-like shape."""
        return {
            "JobName": self.job_name,
            "Status": self.status,
            "StatusMessage": self.status_message,
            "Description": self.description,
            "ModelDirectory": self.model_dir,
            "ModelPackagingMethod": "edge-agent package",
            "ModelPackagingConfiguration": self.request,
            "ModelPackagingOutputDetails": self.output,
            "CreationTimestamp": self.created_at,
            "StartTimestamp": self.started_at,
            "EndTimestamp": self.ended_at,
        }


def default_db_path() -> Path:
    override = os.environ.get(JOBS_DB_ENV)
    if override:
        return Path(override)
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "edge-agent" / "jobs.sqlite3"


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class JobStore:
    """Thin wrapper over one SQLite file; every call opens its own short transaction."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or default_db_path()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise AgentError(
                f"cannot create the jobs database folder {self.path.parent}: {exc.strerror}"
            ) from None
        with self._connect() as db:
            db.execute(_SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=10)
        db.row_factory = sqlite3.Row
        try:
            with db:
                yield db
        finally:
            db.close()

    def create(
        self, job_name: str, model_dir: str, request: dict[str, Any], description: str = ""
    ) -> JobRecord:
        try:
            with self._connect() as db:
                db.execute(
                    "INSERT INTO jobs (job_name, status, model_dir, request, description, created_at) "
                    "VALUES (?, 'CREATED', ?, ?, ?, ?)",
                    (job_name, model_dir, json.dumps(request), description, now()),
                )
        except sqlite3.IntegrityError:
            raise InvalidInputError(
                f"a packaging job named {job_name!r} already exists in {self.path}; choose another --job-name"
            ) from None
        return self.get(job_name)

    def transition(
        self, job_name: str, status: str, message: str = "", output: dict[str, Any] | None = None
    ) -> JobRecord:
        current = self.get(job_name)
        if status not in _TRANSITIONS.get(current.status, set()):
            raise AgentError(f"job {job_name!r} cannot move from {current.status} to {status}")
        stamp = now()
        with self._connect() as db:
            db.execute(
                "UPDATE jobs SET status = ?, status_message = ?, output = ?, "
                "started_at = COALESCE(started_at, CASE WHEN ? = 'RUNNING' THEN ? END), "
                "ended_at = CASE WHEN ? IN ('SUCCEEDED', 'FAILED') THEN ? ELSE ended_at END "
                "WHERE job_name = ?",
                (
                    status,
                    message,
                    json.dumps(output if output is not None else current.output),
                    status,
                    stamp,
                    status,
                    stamp,
                    job_name,
                ),
            )
        return self.get(job_name)

    def get(self, job_name: str) -> JobRecord:
        with self._connect() as db:
            row = db.execute("SELECT * FROM jobs WHERE job_name = ?", (job_name,)).fetchone()
        if row is None:
            raise JobNotFoundError(f"no packaging job named {job_name!r} in {self.path}")
        return _record(row)

    def list(self, max_results: int | None = None, status: str | None = None) -> list[JobRecord]:
        """Newest first."""
        return self.page(max_results, status)[0]

    def page(
        self, max_results: int | None = None, status: str | None = None, next_token: str | None = None
    ) -> tuple[list[JobRecord], str | None]:
        """One page of jobs, newest first, and the token of the next page (None at the end)."""
        try:
            offset = int(next_token) if next_token else 0
        except ValueError:
            raise InvalidInputError(f"next token {next_token!r} is not one this command printed") from None
        query, params = "SELECT * FROM jobs", []
        if status:
            query += " WHERE status = ?"
            params.append(status)
        query += " ORDER BY created_at DESC, rowid DESC LIMIT ? OFFSET ?"
        limit = max_results or -1
        params += [limit + 1 if max_results else -1, offset]
        with self._connect() as db:
            rows = db.execute(query, params).fetchall()
        records = [_record(row) for row in rows]
        if max_results and len(records) > max_results:
            return records[:max_results], str(offset + max_results)
        return records, None


def _record(row: sqlite3.Row) -> JobRecord:
    return JobRecord(
        job_name=row["job_name"],
        status=row["status"],
        status_message=row["status_message"],
        description=row["description"],
        model_dir=row["model_dir"],
        request=json.loads(row["request"]),
        created_at=row["created_at"],
        started_at=row["started_at"],
        ended_at=row["ended_at"],
        output=json.loads(row["output"]),
    )
