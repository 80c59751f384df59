"""`edge-agent component run|list|remove` in separate processes, as a user would run them."""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import sys
from pathlib import Path

RECIPE = {
    "RecipeFormatVersion": "2020-01-25",
    "ComponentName": "com.example.Hello",
    "ComponentVersion": "1.0.0",
    "ComponentConfiguration": {"DefaultConfiguration": {"Message": "world"}},
    "Manifests": [
        {
            "Platform": {"os": "linux"},
            "Lifecycle": {"run": "echo Hello {configuration:/Message}; exec sleep 60"},
        }
    ],
}


def cli(*args: str, root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge_agent", "component", *args, "--root", str(root)],
        capture_output=True,
        text=True,
        timeout=60,
        # As ourselves: tmp_path is in a folder ggc_user could not enter (test_run_as covers that user).
        env={**os.environ, "EDGE_AGENT_RUNNER_USER": pwd.getpwuid(os.geteuid()).pw_name},
    )


def test_run_list_remove_across_processes(tmp_path: Path) -> None:
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    (recipes / "hello.json").write_text(json.dumps(RECIPE))
    deployment = tmp_path / "deployment.json"
    deployment.write_text(
        json.dumps(
            {
                "components": {
                    "com.example.Hello": {
                        "componentVersion": "1.0.0",
                        "configurationUpdate": {"merge": '{"Message":"edge"}'},
                    }
                }
            }
        )
    )
    root = tmp_path / "gg"
    ran = cli("run", "--recipes", str(recipes), "--deployment", str(deployment), root=root)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == "deployed com.example.Hello"
    listed = cli("list", "--json", root=root)
    (row,) = json.loads(listed.stdout)
    assert (row["name"], row["state"]) == ("com.example.Hello", "RUNNING")
    removed = cli("remove", "com.example.Hello", root=root)
    assert removed.returncode == 0 and "removed com.example.Hello" in removed.stdout
    assert json.loads(cli("list", "--json", root=root).stdout) == []
    assert "Hello edge" in (root / "logs" / "com.example.Hello.log").read_text()


def test_user_errors(tmp_path: Path) -> None:
    missing = cli("run", "com.example.Nope", root=tmp_path / "gg")
    assert missing.returncode == 1 and "no version of component com.example.Nope" in missing.stderr
    assert cli("remove", "com.example.Nope", root=tmp_path / "gg").returncode == 1
    assert cli("run", root=tmp_path / "gg").returncode == 1
