"""The local nucleus: real `sh` processes in a temporary root, no mocks."""

from __future__ import annotations

import json
import os
import pwd
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

ME = pwd.getpwuid(os.geteuid()).pw_name


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
        # As ourselves: tmp_path sits in a folder only we can enter (test_run_as covers ggc_user-like users).
        kernel = Kernel(tmp_path / "root", store, thing_name="thing-7", run_as=ME)
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


def test_a_restarted_hard_dependency_restarts_its_dependents(make_kernel) -> None:
    a = component("A", startup="true", config={"Port": "7"})
    b = component("B", deps={"A": "*"}, startup="echo sees={A:configuration:/Port}")
    kernel = make_kernel(a, b)
    kernel.deploy({"B": "*"})
    kernel.deploy({"B": "*"}, {"A": ConfigurationUpdate(merge={"Port": "8"})})
    text = kernel.log_path("B").read_text()
    assert "sees=7" in text and "sees=8" in text


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
    # reset gives the key its DefaultConfiguration value back (the nucleus's rule), it does not delete it.
    assert "msg=default n=5" in log and "msg=new n=1" in log
    assert (kernel.work_path("C") / "count").read_text().count("installed") == 2
    state = json.loads((kernel.root / "runner/state.json").read_text())
    assert state["components"]["C"]["configuration"] == {"Msg": "new", "N": {"x": 1, "y": 2}}


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
    kernel = make_kernel(component("M", artifacts=[{"URI": "greengrass:x.bin"}]))
    with pytest.raises(AgentError, match=r"M/1.0.0/x\.bin"):
        kernel.deploy({"M": "*"})


@pytest.mark.parametrize("uri", ["file:///tmp/model.zip", "https://example.com/model.zip", "model.zip"])
def test_uris_the_nucleus_refuses_are_refused_with_how_to_stage_them(
    make_kernel, tmp_path: Path, uri
) -> None:
    staged = tmp_path / "artifacts" / "U" / "1.0.0"
    staged.mkdir(parents=True)
    (staged / "model.zip").write_bytes(b"x")  # even when the file is staged, as greengrass-cli would refuse
    kernel = make_kernel(
        component("U", artifacts=[{"URI": uri}], startup="true"), artifacts=tmp_path / "artifacts"
    )
    with pytest.raises(AgentError, match="UNSUPPORTED_ARTIFACT_SCHEME") as caught:
        kernel.deploy({"U": "*"})
    assert "s3://BUCKET/PREFIX/model.zip" in str(caught.value)
    assert "<artifacts dir>/U/<version>/model.zip" in str(caught.value)
    assert kernel.list() == []


def test_an_s3_uri_maps_to_the_artifact_folder_by_file_name(make_kernel, tmp_path: Path) -> None:
    """As greengrass-cli --artifactDir: DIR/<component>/<version>/<basename of the URI>, whatever the bucket."""
    staged = tmp_path / "artifacts" / "S" / "2.1.0"
    staged.mkdir(parents=True)
    (staged / "model.zip").write_bytes(b"payload")
    uri = "s3://some-bucket/deep/prefix/S/2.1.0/model.zip"
    kernel = make_kernel(
        component("S", "2.1.0", artifacts=[{"URI": uri}], startup="cat {artifacts:path}/model.zip"),
        artifacts=tmp_path / "artifacts",
    )
    kernel.deploy({"S": "*"})
    assert "payload" in kernel.log_path("S").read_text()
    copied = kernel.root / "packages/artifacts/S/2.1.0/model.zip"
    assert copied.stat().st_mode & 0o777 == 0o400  # default Permission: Read OWNER, Execute NONE


def test_background_run_survives_the_kernel_object_and_removal_stops_it(make_kernel, tmp_path: Path) -> None:
    service = component("Svc", run="echo $$ > pid; exec sleep 60", shutdown="echo shutting-down")
    kernel = make_kernel(service)
    kernel.deploy({"Svc": "*"})
    wait_for(lambda: (kernel.work_path("Svc") / "pid").is_file())
    fresh = Kernel(tmp_path / "root", ComponentStore(), run_as=ME)  # as a second CLI call would see it
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


def lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def test_a_run_that_keeps_failing_recovers_twice_then_is_broken(make_kernel) -> None:
    """The nucleus: ERRORED -> recover -> shutdown -> run again; the third error within an hour is BROKEN."""
    kernel = make_kernel(
        component("Ok", run="exit 0"),
        component(
            "Bad", run="echo run >> runs; exit 3", recover="echo r >> recovers", shutdown="echo s >> stops"
        ),
    )
    kernel.deploy({"Ok": "*", "Bad": "*"})
    wait_for(lambda: {r["name"]: r["state"] for r in kernel.list()} == {"Bad": "BROKEN", "Ok": "FINISHED"})
    work = kernel.work_path("Bad")
    assert (len(lines(work / "runs")), len(lines(work / "recovers")), len(lines(work / "stops"))) == (3, 2, 3)
    assert "BROKEN: 3 errors within an hour" in kernel.log_path("Bad").read_text()


def test_recover_lets_a_run_that_failed_once_come_back(make_kernel) -> None:
    script = "echo run >> runs; if [ -f repaired ]; then exec sleep 60; fi; exit 1"
    kernel = make_kernel(component("Flaky", run=script, recover="touch repaired"))
    kernel.deploy({"Flaky": "*"})
    wait_for(lambda: len(lines(kernel.work_path("Flaky") / "runs")) == 2)
    wait_for(lambda: kernel.list()[0]["state"] == "RUNNING")
    assert (kernel.work_path("Flaky") / "repaired").is_file()


def test_install_errors_run_recover_and_retry_then_break(make_kernel) -> None:
    kernel = make_kernel(
        component(
            "Broken", install="echo something went wrong; exit 7", recover="echo r >> recovers", run="true"
        )
    )
    with pytest.raises(LifecycleError, match=r"install exited with 7 \(3 errors within an hour: BROKEN\)"):
        kernel.deploy({"Broken": "*"})
    assert kernel.log_path("Broken").read_text().count("something went wrong") == 3
    assert len(lines(kernel.work_path("Broken") / "recovers")) == 2
    assert kernel.list()[0]["state"] == "BROKEN"


def test_install_recovered_by_recover_goes_on(make_kernel) -> None:
    kernel = make_kernel(
        component("Fixable", install="test -f fixed || exit 1", recover="touch fixed", startup="echo up")
    )
    kernel.deploy({"Fixable": "*"})
    assert kernel.list()[0]["state"] == "RUNNING"
    assert "install exited with 1: ERRORED (1 of 3 within an hour)" in kernel.log_path("Fixable").read_text()


def test_startup_errors_stop_the_component_before_the_next_try(make_kernel) -> None:
    kernel = make_kernel(component("St", startup="echo try >> tries; exit 2", shutdown="echo s >> stops"))
    with pytest.raises(LifecycleError, match="startup exited with 2"):
        kernel.deploy({"St": "*"})
    assert (len(lines(kernel.work_path("St") / "tries")), len(lines(kernel.work_path("St") / "stops"))) == (
        3,
        3,
    )


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


def test_skipif_is_honoured_on_every_step(make_kernel, tmp_path: Path) -> None:
    here, absent = tmp_path / "here", tmp_path / "absent"
    here.write_text("")
    skip = {"Script": "echo ran >> ran; exit 9", "Skipif": f"exists {here}"}
    kernel = make_kernel(
        component("R", run=skip, shutdown={"Script": "exit 1", "Skipif": "onpath sh"}),
        component("U", startup={"Script": "echo startup-ran", "Skipif": f"!exists {absent}"}),
        component(
            "V",
            install={"Script": "exit 3", "Skipif": f"exists {absent}"},  # not skipped: fails
            recover={"Script": "echo recover-ran", "Skipif": "onpath sh"},
            run="true",
        ),
    )
    kernel.deploy({"R": "*", "U": "*"})
    # A skipped run is RUNNING with no process, as the nucleus reports it.
    assert [(r["name"], r["state"], r["pid"]) for r in kernel.list()] == [
        ("R", "RUNNING", None),
        ("U", "RUNNING", None),
    ]
    assert not (kernel.work_path("R") / "ran").exists()
    assert "startup-ran" not in kernel.log_path("U").read_text()
    kernel.remove(["R"])
    assert "shutdown: skipped (onpath sh)" in kernel.log_path("R").read_text()
    with pytest.raises(LifecycleError):
        kernel.deploy({"V": "*"})
    text = kernel.log_path("V").read_text()
    assert text.count("recover: skipped (onpath sh)") == 2 and "recover-ran" not in text


def test_configuration_merged_earlier_survives_an_upgrade(make_kernel) -> None:
    script = "echo A={configuration:/A} B={configuration:/B} New={configuration:/New}"
    v1 = component("Up", "1.0.0", startup=script, config={"A": "a1", "B": "b1"})
    v2 = component("Up", "2.0.0", startup=script, config={"A": "a2", "B": "b2", "New": "n2"})
    kernel = make_kernel(v1, v2)
    kernel.deploy({"Up": "1.0.0"}, {"Up": ConfigurationUpdate(merge={"A": "mine"})})
    kernel.deploy({"Up": "2.0.0"})
    # The merged value stays; values that came from 1.0.0's defaults take 2.0.0's (nucleus timestamps).
    assert "A=mine B=b2 New=n2" in kernel.log_path("Up").read_text()
    kernel.deploy({"Up": "2.0.0"}, {"Up": ConfigurationUpdate(reset=["/A"])})
    assert "A=a2 B=b2 New=n2" in kernel.log_path("Up").read_text()


def test_steps_get_a_clean_environment(make_kernel, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNNER_CALLER_SECRET", "leaked")
    kernel = make_kernel(component("Env", startup="env > env.txt", deps={}))
    kernel.deploy({"Env": "*"})
    env = dict(
        line.split("=", 1)
        for line in (kernel.work_path("Env") / "env.txt").read_text().splitlines()
        if "=" in line
    )
    assert "RUNNER_CALLER_SECRET" not in env
    me = pwd.getpwuid(os.geteuid())
    assert (env["HOME"], env["USER"], env["AWS_IOT_THING_NAME"]) == (me.pw_dir, me.pw_name, "thing-7")
    assert env["PATH"] == "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    assert env["GG_ROOT_CA_PATH"] == str(kernel.root / "rootCA.pem")
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == "us-east-1"
    assert env["SVCUID"] == env["AWS_CONTAINER_AUTHORIZATION_TOKEN"]
    assert "AWS_CONTAINER_CREDENTIALS_FULL_URI" not in env  # only for components that depend on TES
    expected = {"HOME", "USER", "LOGNAME", "PATH", "AWS_IOT_THING_NAME", "AWS_REGION", "AWS_DEFAULT_REGION"}
    expected |= {"GG_ROOT_CA_PATH", "GGC_VERSION", "SVCUID", "AWS_CONTAINER_AUTHORIZATION_TOKEN"}
    expected |= {"AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT"}
    assert set(env) - {"PWD", "SHLVL", "_", "OLDPWD"} == expected


def test_a_daemon_started_by_startup_keeps_running(make_kernel) -> None:
    """startup may start a background process and exit; the nucleus leaves that process running."""
    kernel = make_kernel(component("D", startup="sleep 30 > /dev/null 2>&1 & echo $! > daemon.pid"))
    kernel.deploy({"D": "*"})
    pid = int((kernel.work_path("D") / "daemon.pid").read_text())
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        assert stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")
        assert kernel.list()[0]["state"] == "RUNNING"
    finally:
        os.kill(pid, 9)


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
    fresh = Kernel(tmp_path / "root", ComponentStore(), run_as=ME)
    assert {r["name"]: r["state"] for r in fresh.list()} == {"Base": "RUNNING", "Top": "BROKEN"}
    assert json.loads((kernel.root / "runner/state.json").read_text())["roots"] == {"Base": "*"}
    assert fresh.remove(["Base"], cascade=True) == ["Top", "Base"]
    assert fresh.list() == []
