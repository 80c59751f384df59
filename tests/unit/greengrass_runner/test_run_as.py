"""Steps run as an unprivileged user with a home when the runner is root, as the nucleus runs ggc_user.

The test creates its own user and group (useradd/groupadd) and removes them afterwards; it needs
root and skips, saying so, elsewhere. Real processes, real ownership and permissions.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_agent.greengrass_runner import ComponentStore, Kernel, parse_recipe
from edge_agent.greengrass_runner.process import USER_ENV, RunAsError

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("useradd") is None,
    reason="switching users needs root and useradd; as another user the runner (like the nucleus) runs steps as itself",
)


@pytest.fixture(scope="module")
def user() -> Iterator[tuple[str, str]]:
    name = f"eart{uuid.uuid4().hex[:8]}"
    group = f"{name}g"
    extra = f"{name}x"  # a supplementary group, like `video` for a camera or the agent's SocketGroup
    for each in (group, extra):
        subprocess.run(["groupadd", "--system", each], check=True)
    subprocess.run(
        ["useradd", "--system", "--create-home", "--gid", group, "--groups", extra, name], check=True
    )
    try:
        yield name, group
    finally:
        subprocess.run(["userdel", "--remove", name], check=False, capture_output=True)
        for each in (group, extra):
            subprocess.run(["groupdel", each], check=False, capture_output=True)


@pytest.fixture
def open_root() -> Iterator[Path]:
    """A root folder the step user can reach (pytest's tmp_path is in a folder only root may enter)."""
    folder = Path(tempfile.mkdtemp(prefix="edge-agent-runner-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def recipe(lifecycle: dict, artifacts: list | None = None) -> dict:
    return {
        "RecipeFormatVersion": "2020-01-25",
        "ComponentName": "com.example.Who",
        "ComponentVersion": "1.0.0",
        "Manifests": [{"Platform": {"os": "linux"}, "Lifecycle": lifecycle, "Artifacts": artifacts or []}],
    }


def test_steps_run_as_the_user_with_its_home_and_own_their_files(user, open_root: Path) -> None:
    name, group = user
    staged = open_root / "store" / "com.example.Who" / "1.0.0"
    staged.mkdir(parents=True)
    (staged / "secret.txt").write_text("for the owner only")
    lifecycle = {
        "install": {"Script": "id -u > install-uid", "RequiresPrivilege": True},
        "run": "id -un > who; id -gn >> who; id -Gn > groups; echo $HOME > home; cat {artifacts:path}/secret.txt > copy; touch done; exec sleep 60",
    }
    kernel = Kernel(
        open_root / "gg",
        ComponentStore(
            artifact_dirs=[open_root / "store"],
            extra=[parse_recipe(recipe(lifecycle, [{"URI": "s3://bucket/p/secret.txt"}]))],
        ),
        run_as=f"{name}:{group}",
    )
    try:
        kernel.deploy({"com.example.Who": "*"})
        work = kernel.work_path("com.example.Who")
        deadline = time.monotonic() + 30
        while not (work / "done").is_file():  # written last: the other files are complete
            assert time.monotonic() < deadline, "the run step did not write its files"
            time.sleep(0.05)
        assert (work / "who").read_text().split() == [name, group]
        assert set((work / "groups").read_text().split()) == {group, f"{name}x"}
        home = pwd.getpwnam(name).pw_dir
        assert (work / "home").read_text().strip() == home and Path(home).is_dir()
        assert (work / "copy").read_text() == "for the owner only"  # Read OWNER, and the user is the owner
        assert (work / "install-uid").read_text().strip() == "0"  # RequiresPrivilege runs as root
        artifact = kernel.root / "packages/artifacts/com.example.Who/1.0.0/secret.txt"
        assert (artifact.stat().st_uid, artifact.stat().st_mode & 0o777) == (pwd.getpwnam(name).pw_uid, 0o400)
        assert work.stat().st_uid == pwd.getpwnam(name).pw_uid
        (row,) = kernel.list()
        assert row["state"] == "RUNNING"
    finally:
        assert kernel.remove_all() == ["com.example.Who"]


def test_a_root_folder_the_user_cannot_enter_is_refused(user, tmp_path: Path) -> None:
    name, _ = user
    kernel = Kernel(
        tmp_path / "gg", ComponentStore(extra=[parse_recipe(recipe({"startup": "true"}))]), run_as=name
    )
    with pytest.raises(RunAsError, match=f"{name}, who cannot enter"):
        kernel.deploy({"com.example.Who": "*"})


def test_root_defaults_to_ggc_user(monkeypatch: pytest.MonkeyPatch, open_root: Path) -> None:
    monkeypatch.delenv(USER_ENV, raising=False)
    kernel = Kernel(open_root / "gg", ComponentStore(extra=[parse_recipe(recipe({"startup": "id -un"}))]))
    try:
        pwd.getpwnam("ggc_user")
    except KeyError:
        with pytest.raises(RunAsError, match=r"no user 'ggc_user'.*useradd --system --create-home"):
            kernel.deploy({"com.example.Who": "*"})
        assert kernel.list() == []  # nothing ran as root instead
        return
    kernel.deploy({"com.example.Who": "*"})
    try:
        assert "ggc_user" in kernel.log_path("com.example.Who").read_text()
    finally:
        kernel.remove_all()
