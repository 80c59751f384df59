"""The local nucleus: real `sh` processes in a temporary root, no mocks."""

from __future__ import annotations

import json
import os
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_agent.errors import AgentError
from edge_agent.greengrass_runner import (
    ComponentStore,
    ConfigurationUpdate,
    Kernel,
    LifecycleError,
    ResolutionError,
    parse_recipe,
)


def component(
    name: str, version: str = "1.0.0", deps: dict[str, str] | None = None, **lifecycle: object
) -> dict:
    recipe = {
        "RecipeFormatVersion": "2020-01-25",
        "ComponentName": name,
        "ComponentVersion": version,
        "ComponentConfiguration": {"DefaultConfiguration": lifecycle.pop("config", {})},
        "ComponentDependencies": {d: {"VersionRequirement": r} for d, r in (deps or {}).items()},
        "Manifests": [
            {"Platform": {"os": "linux"}, "Lifecycle": lifecycle, "Artifacts": lifecycle.pop("artifacts", [])}
        ],
    }
    recipe["Manifests"][0]["Lifecycle"] = {k: v for k, v in lifecycle.items()}
    return recipe


@pytest.fixture
def make_kernel(tmp_path: Path) -> Iterator:
    kernels: list[Kernel] = []

    def make(*recipes: dict, artifacts: Path | None = None) -> Kernel:
        store = ComponentStore(
            artifact_dirs=[artifacts] if artifacts else [], extra=[parse_recipe(r) for r in recipes]
        )
        kernel = Kernel(tmp_path / "root", store, thing_name="thing-7")
        kernels.append(kernel)
        return kernel

    yield make
    for kernel in kernels:
        kernel.remove_all()


def wait_for(condition, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_dependencies_start_first_and_see_each_other(make_kernel) -> None:
    a = component("A", startup="echo up > ready; echo A-started", config={"Port": "7"})
    b = component(
        "B",
        deps={"A": ">=1.0.0"},
        startup="test -f {A:work:path}/ready && echo port={A:configuration:/Port} thing=$AWS_IOT_THING_NAME",
    )
    kernel = make_kernel(b, a)
    assert kernel.deploy({"B": "*"}) == ["A", "B"]
    assert "port=7 thing=thing-7" in kernel.log_path("B").read_text()
    assert [(r["name"], r["state"], r["root"]) for r in kernel.list()] == [
        ("A", "RUNNING", False),
        ("B", "RUNNING", True),
    ]
    assert (kernel.root / "packages/recipes/A-1.0.0.json").is_file()


def test_highest_version_meeting_every_requirement(make_kernel) -> None:
    recipes = [component("Lib", v, startup=f"echo lib {v}") for v in ("1.0.0", "1.4.0", "2.0.0")]
    app = component("App", deps={"Lib": "^1.0.0"}, startup="true")
    kernel = make_kernel(app, *recipes)
    kernel.deploy({"App": "*"})
    assert {r["name"]: r["version"] for r in kernel.list()} == {"Lib": "1.4.0", "App": "1.0.0"}
    with pytest.raises(ResolutionError, match="no version of component Lib satisfies"):
        kernel.deploy({"Lib": ">=3.0.0"})
    with pytest.raises(ResolutionError, match="no version of component Ghost"):
        make_kernel(component("X", deps={"Ghost": "*"})).deploy({"X": "*"})


def test_configuration_merge_reset_and_redeploy(make_kernel) -> None:
    comp = component(
        "C",
        install="echo installed >> count",
        startup="echo msg={configuration:/Msg} n={configuration:/N/x}",
        config={"Msg": "default", "N": {"x": 1, "y": 2}},
    )
    kernel = make_kernel(comp)
    kernel.deploy({"C": "*"}, {"C": ConfigurationUpdate.from_json({"merge": '{"N": {"x": 5}}'})})
    kernel.deploy({"C": "*"})  # unchanged: nothing re-runs
    assert (kernel.work_path("C") / "count").read_text().count("installed") == 1
    kernel.deploy({"C": "*"}, {"C": ConfigurationUpdate(merge={"Msg": "new"}, reset=["/N/x"])})
    log = kernel.log_path("C").read_text()
    assert "msg=default n=5" in log and "msg=new n={configuration:/N/x}" in log
    assert (kernel.work_path("C") / "count").read_text().count("installed") == 2


def test_zip_artifacts_unarchive_and_paths(make_kernel, tmp_path: Path) -> None:
    store = tmp_path / "artifacts" / "Z" / "1.0.0"
    store.mkdir(parents=True)
    with zipfile.ZipFile(store / "bundle.zip", "w") as handle:
        handle.writestr("inner/data.txt", "payload")
    (store / "plain.txt").write_text("plain")
    comp = component(
        "Z",
        install="cat {artifacts:decompressedPath}/bundle/inner/data.txt {artifacts:path}/plain.txt",
        artifacts=[
            {"URI": "s3://bucket/x/bundle.zip", "Unarchive": "ZIP"},
            {"URI": "s3://bucket/x/plain.txt"},
        ],
    )
    kernel = make_kernel(comp, artifacts=tmp_path / "artifacts")
    kernel.deploy({"Z": "*"})
    assert "payloadplain" in kernel.log_path("Z").read_text()
    assert (kernel.root / "packages/artifacts-unarchived/Z/1.0.0/bundle/inner/data.txt").is_file()
    assert kernel.list()[0]["state"] == "FINISHED"


def test_zip_entries_outside_the_folder_are_refused(make_kernel, tmp_path: Path) -> None:
    store = tmp_path / "artifacts" / "Evil" / "1.0.0"
    store.mkdir(parents=True)
    with zipfile.ZipFile(store / "evil.zip", "w") as handle:
        handle.writestr("../../escape.txt", "x")
    kernel = make_kernel(
        component("Evil", artifacts=[{"URI": "s3://b/evil.zip", "Unarchive": "ZIP"}]),
        artifacts=tmp_path / "artifacts",
    )
    with pytest.raises(AgentError, match="outside its folder"):
        kernel.deploy({"Evil": "*"})


def test_missing_artifact_names_where_it_looked(make_kernel) -> None:
    kernel = make_kernel(component("M", artifacts=[{"URI": "https://example.com/x.bin"}]))
    with pytest.raises(AgentError, match=r"M/1.0.0/x\.bin"):
        kernel.deploy({"M": "*"})


def test_background_run_survives_the_kernel_object_and_removal_stops_it(make_kernel, tmp_path: Path) -> None:
    service = component("Svc", run="echo $$ > pid; exec sleep 60", shutdown="echo shutting-down")
    kernel = make_kernel(service)
    kernel.deploy({"Svc": "*"})
    wait_for(lambda: (kernel.work_path("Svc") / "pid").is_file())
    fresh = Kernel(tmp_path / "root", ComponentStore())  # as a second CLI call would see it
    row = fresh.list()[0]
    assert row["state"] == "RUNNING" and row["pid"]
    assert fresh.remove(["Svc"]) == ["Svc"]
    assert "shutting-down" in kernel.log_path("Svc").read_text()
    pid = int((kernel.work_path("Svc") / "pid").read_text())
    # remove() returns only after every process of the component's group has gone.
    assert not Path(f"/proc/{pid}").exists() or " Z " in Path(f"/proc/{pid}/stat").read_text()
    assert fresh.list() == []


def test_remove_waits_for_a_slow_graceful_shutdown(make_kernel) -> None:
    """The run script traps SIGTERM and needs a moment, like the agent draining its requests."""
    script = (
        "trap 'sleep 0.5; echo drained > drained; exit 0' TERM; echo $$ > pid; while :; do sleep 0.05; done"
    )
    kernel = make_kernel(component("Slow", run=script))
    kernel.deploy({"Slow": "*"})
    wait_for(lambda: (kernel.work_path("Slow") / "pid").is_file())
    kernel.remove(["Slow"])
    assert (kernel.work_path("Slow") / "drained").read_text().strip() == "drained"


def test_run_exit_codes_become_finished_or_errored(make_kernel) -> None:
    kernel = make_kernel(component("Ok", run="exit 0"), component("Bad", run="exit 3"))
    kernel.deploy({"Ok": "*", "Bad": "*"})
    wait_for(lambda: {r["name"]: r["state"] for r in kernel.list()} == {"Bad": "ERRORED", "Ok": "FINISHED"})


def test_failed_install_marks_broken_and_keeps_the_output(make_kernel) -> None:
    kernel = make_kernel(component("Broken", install="echo something went wrong; exit 7", run="true"))
    with pytest.raises(LifecycleError, match="install exited with 7"):
        kernel.deploy({"Broken": "*"})
    assert "something went wrong" in kernel.log_path("Broken").read_text()
    assert kernel.list()[0]["state"] == "BROKEN"


def test_skipif_and_timeout(make_kernel, tmp_path: Path) -> None:
    marker = tmp_path / "exists"
    marker.write_text("")
    kernel = make_kernel(
        component("S1", install={"Script": "exit 1", "Skipif": "onpath sh"}),
        component("S2", install={"Script": "exit 1", "Skipif": f"exists {marker}"}),
        component("S3", install={"Script": "sleep 5", "Timeout": 0.3}),
    )
    kernel.deploy({"S1": "*", "S2": "*"})
    assert "skipped (onpath sh)" in kernel.log_path("S1").read_text()
    started = time.monotonic()
    with pytest.raises(LifecycleError, match="exited with 124"):
        kernel.deploy({"S3": "*"})
    assert time.monotonic() - started < 4
    assert "timed out" in kernel.log_path("S3").read_text()


def test_setenv_reaches_scripts(make_kernel) -> None:
    comp = component(
        "E",
        setenv={"GREETING": "hello {configuration:/Who}"},
        startup={"Script": "echo $GREETING $EXTRA", "Setenv": {"EXTRA": "!"}},
        config={"Who": "world"},
    )
    kernel = make_kernel(comp)
    kernel.deploy({"E": "*"})
    assert "hello world !" in kernel.log_path("E").read_text()


def test_remove_refuses_dependents_unless_cascade_and_drops_orphans(make_kernel) -> None:
    kernel = make_kernel(
        component("Agent", startup="true"),
        component("Model", deps={"Agent": "*"}, startup="true", shutdown="echo model-bye"),
        component("Client", deps={"Model": "*"}, startup="true"),
    )
    kernel.deploy({"Client": "*"})
    with pytest.raises(AgentError, match="Client depends on"):
        kernel.remove(["Model"])
    # Model and Agent were only dependencies of Client: removing Client removes them too.
    assert kernel.remove(["Client"]) == ["Client", "Model", "Agent"]
    kernel.deploy({"Agent": "*", "Client": "*"})
    assert kernel.remove(["Model"], cascade=True) == ["Client", "Model"]
    assert [r["name"] for r in kernel.list()] == ["Agent"]
    assert kernel.log_path("Model").read_text().count("model-bye") == 2
    with pytest.raises(AgentError, match="not deployed"):
        kernel.remove(["Model"])


def test_a_revised_deployment_removes_what_it_no_longer_lists(make_kernel) -> None:
    kernel = make_kernel(
        component("Agent", startup="true"),
        component("Model", deps={"Agent": "*"}, startup="true", shutdown="echo model-bye"),
        component("Other", startup="true", shutdown="echo other-bye"),
    )
    kernel.deploy({"Model": "*", "Other": "*"}, replace=True)
    assert [r["name"] for r in kernel.list()] == ["Agent", "Model", "Other"]
    kernel.deploy({"Agent": "*"}, replace=True)  # the next revision lists only the agent
    assert [(r["name"], r["root"]) for r in kernel.list()] == [("Agent", True)]
    assert "model-bye" in kernel.log_path("Model").read_text()
    assert "other-bye" in kernel.log_path("Other").read_text()
    kernel.deploy({"Other": "*"})  # without replace (run NAME), a deployment adds to what is there
    assert [r["name"] for r in kernel.list()] == ["Agent", "Other"]


def test_state_file_is_json(make_kernel) -> None:
    kernel = make_kernel(component("J", startup="true"))
    kernel.deploy({"J": "1.0.0"})
    state = json.loads((kernel.root / "runner/state.json").read_text())
    assert state["roots"] == {"J": "1.0.0"} and state["components"]["J"]["version"] == "1.0.0"
    assert os.access(kernel.root / "logs" / "J.log", os.R_OK)


def test_failed_deployment_keeps_what_came_up_manageable(make_kernel, tmp_path: Path) -> None:
    kernel = make_kernel(
        component("Base", run="exec sleep 60"),
        component("Top", deps={"Base": "*"}, install="exit 1"),
    )
    with pytest.raises(LifecycleError, match="Top: install exited with 1"):
        kernel.deploy({"Base": "*", "Top": "*"})
    fresh = Kernel(tmp_path / "root", ComponentStore())
    assert {r["name"]: r["state"] for r in fresh.list()} == {"Base": "RUNNING", "Top": "BROKEN"}
    assert json.loads((kernel.root / "runner/state.json").read_text())["roots"] == {"Base": "*"}
    assert fresh.remove(["Base"], cascade=True) == ["Top", "Base"]
    assert fresh.list() == []
