"""Job records survive restarts (a new JobStore on the same file) and follow the status machine."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_agent.errors import AgentError, InvalidInputError
from edge_agent.packager.jobs import JOBS_DB_ENV, JobNotFoundError, JobStore, default_db_path


def test_status_machine_and_times(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.sqlite3")
    created = store.create("job-1", "/models/m", {"Greengrass": {"ComponentName": "X"}}, "first")
    assert created.status == "CREATED" and created.started_at is None and created.ended_at is None
    running = store.transition("job-1", "RUNNING", "packaging")
    assert running.started_at is not None and running.ended_at is None
    done = store.transition("job-1", "SUCCEEDED", "ok", output={"Greengrass": {"ComponentName": "X"}})
    assert done.ended_at is not None and done.started_at == running.started_at
    with pytest.raises(AgentError, match="cannot move from SUCCEEDED to RUNNING"):
        store.transition("job-1", "RUNNING")
    with pytest.raises(AgentError, match="cannot move from CREATED to SUCCEEDED"):
        store.create("job-2", "/m", {})
        store.transition("job-2", "SUCCEEDED")


def test_records_survive_a_new_store_and_list_newest_first(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "jobs.sqlite3"
    first = JobStore(path)
    for name in ("a", "b", "c"):
        first.create(name, "/m", {"n": name})
    first.transition("b", "RUNNING")
    first.transition("b", "FAILED", "boom")
    reopened = JobStore(path)
    assert [r.job_name for r in reopened.list()] == ["c", "b", "a"]
    assert [r.job_name for r in reopened.list(max_results=2)] == ["c", "b"]
    assert [r.job_name for r in reopened.list(status="FAILED")] == ["b"]
    first_page, token = reopened.page(max_results=2)
    assert [r.job_name for r in first_page] == ["c", "b"] and token
    second_page, end = reopened.page(max_results=2, next_token=token)
    assert [r.job_name for r in second_page] == ["a"] and end is None
    with pytest.raises(InvalidInputError, match="next token"):
        reopened.page(next_token="garbage")
    described = reopened.get("b").to_json()
    assert described["Status"] == "FAILED" and described["StatusMessage"] == "boom"
    assert described["ModelPackagingConfiguration"] == {"n": "b"}


def test_duplicate_and_missing_jobs(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.sqlite3")
    store.create("x", "/m", {})
    with pytest.raises(InvalidInputError, match="already exists"):
        store.create("x", "/m", {})
    with pytest.raises(JobNotFoundError, match="no packaging job named 'y'"):
        store.get("y")


def test_default_location(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(JOBS_DB_ENV, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_db_path() == tmp_path / "xdg" / "edge-agent" / "jobs.sqlite3"
    monkeypatch.setenv(JOBS_DB_ENV, str(tmp_path / "elsewhere.db"))
    assert default_db_path() == tmp_path / "elsewhere.db"
