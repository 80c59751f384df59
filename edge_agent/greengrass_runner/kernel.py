"""A local stand-in for the Greengrass nucleus: deploy, run and remove components from recipes.

How this works:
- `deploy` adds root components (name -> version requirement), resolves their dependencies
  transitively (highest version that meets every requirement, npm ranges as in the nucleus), and
  processes components in dependency order. For each one it copies artifacts to
  packages/artifacts/<name>/<version> (only s3://, greengrass: and docker: URIs, as the nucleus;
  found locally by file name as greengrass-cli --artifactDir does, or downloaded from S3),
  unpacks ZIPs to packages/artifacts-unarchived/<name>/<version>/<zip stem>, resolves the
  configuration as the nucleus does (configuration.py: earlier merges survive upgrades, reset
  restores defaults), then runs bootstrap (first install), install, and startup (waited for) or
  run (kept going by a supervisor process), as the recipe reference describes. A component's
  dependents start only after its startup succeeded or its run began.
- Steps run as the nucleus runs them (process.py): as ggc_user:ggc_group when the runner is root,
  with a clean environment, `sh -c` in work/<name>, output appended to logs/<name>.log; `Skipif`
  is honoured on every step. A failing step makes the component ERRORED: `recover` runs and the
  step is tried again, until the third error within an hour makes it BROKEN (error_window.py).
- `remove` runs shutdown, stops the run process group, forgets the component, and removes the
  dependencies nothing else needs. It refuses to remove a component others depend on unless
  `cascade` removes those too.
- State (roots, versions, configuration, run pids) lives in runner/state.json, so the CLI can
  deploy in one call and remove in another while the processes keep running in between.

Not modelled (docs/greengrass.md, "Local runner"): IPC, token exchange and the cloud deployment
service (their environment variables are stand-ins), restarts on HARD dependency state changes
between deployments (within one, a restarted dependency restarts its HARD dependents), bootstrap
restarts, rollback, system resource limits, docker: artifacts.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edge_agent.errors import AgentError
from edge_agent.greengrass_runner.configuration import ConfigurationUpdate, resolve_configuration
from edge_agent.greengrass_runner.error_window import ErrorWindow
from edge_agent.greengrass_runner.process import (
    RunAs,
    RunAsError,
    StepCommand,
    base_environment,
    check_reachable,
    default_run_as,
    group_alive,
    log_line,
    run_foreground,
    should_skip,
    terminate_group,
    write_json,
)
from edge_agent.greengrass_runner.recipe import Artifact, Recipe, Step, host_platform, load_recipe
from edge_agent.greengrass_runner.store import ComponentStore, ResolutionError
from edge_agent.greengrass_runner.variables import ComponentPaths, interpolate

log = logging.getLogger(__name__)
DEFAULT_THING_NAME = "local-core-device"
DEFAULT_REGION = "us-east-1"
_READ = {"NONE": 0, "OWNER": 0o400, "ALL": 0o444}
_EXECUTE = {"NONE": 0, "OWNER": 0o100, "ALL": 0o111}

__all__ = ["ConfigurationUpdate", "Kernel", "LifecycleError"]
Context = tuple[ComponentPaths, dict[str, ComponentPaths]]


class LifecycleError(AgentError):
    """A lifecycle step failed; the component log has its output."""


class Kernel:
    """One Greengrass-like root folder and the components deployed into it.

    `env` is the nucleus's `setenv` configuration (added to every step's clean environment);
    `run_as` is its `runWithDefault` user, `USER[:GROUP]` (default: ggc_user:ggc_group when the
    runner is root, else the current user; $EDGE_AGENT_RUNNER_USER also sets it).
    """

    def __init__(
        self,
        root: Path,
        store: ComponentStore | None = None,
        thing_name: str = DEFAULT_THING_NAME,
        platform_overrides: dict[str, str] | None = None,
        env: dict[str, str] | None = None,
        run_as: str | None = None,
        region: str = DEFAULT_REGION,
    ) -> None:
        self.root = root.resolve()
        self.store = store or ComponentStore()
        self.thing_name = thing_name
        self.region = region
        self.platform = host_platform(platform_overrides)
        self.env = dict(env or {})
        self._run_as_spec = run_as
        self._run_as: RunAs | None = None
        for folder in (
            "packages/recipes",
            "packages/artifacts",
            "packages/artifacts-unarchived",
            "work",
            "logs",
            "runner",
        ):
            (self.root / folder).mkdir(parents=True, exist_ok=True)
        self.store.recipe_dirs.append(self.root / "packages" / "recipes")
        self._children: dict[int, subprocess.Popen[bytes]] = {}

    @property
    def run_as(self) -> RunAs:
        """Resolved when first needed, so `list` and `remove` work even where the user is gone."""
        if self._run_as is None:
            self._run_as = default_run_as(self._run_as_spec)
        return self._run_as

    # ----- state -------------------------------------------------------------------------------

    @property
    def _state_path(self) -> Path:
        return self.root / "runner" / "state.json"

    def _load_state(self) -> dict[str, Any]:
        if self._state_path.is_file():
            return json.loads(self._state_path.read_text(encoding="utf-8"))
        return {"roots": {}, "components": {}}

    def _save_state(self, state: dict[str, Any]) -> None:
        write_json(self._state_path, state)

    # ----- public API --------------------------------------------------------------------------

    def deploy(
        self,
        roots: dict[str, str],
        updates: dict[str, ConfigurationUpdate] | None = None,
        replace: bool = False,
    ) -> list[str]:
        """Add `roots` (name -> version requirement) and bring every needed component up; returns them in order.

        replace=True is a deployment document's revision: `roots` is the whole set, so a component
        no longer needed by any of them is stopped and removed (as Greengrass does when a component
        is dropped from a deployment).
        """
        updates = updates or {}
        state = self._load_state()
        if replace:
            state["roots"] = {}
        all_roots = {**state["roots"], **roots}
        recipes = self._resolve(all_roots)
        order = _topological(recipes)
        run_as = self.run_as
        check_reachable(self.root, run_as)
        if replace:
            deployed = state["components"]
            for name in reversed(_order_from_state(deployed)):
                if name not in recipes:
                    self._stop(name, deployed[name], state)
                    del deployed[name]
                    self._log(name, "component removed (not in the deployment)")
        restarted: set[str] = set()
        try:
            for name in order:
                recipe = recipes[name]
                current = state["components"].get(name)
                same_version = bool(current) and current["version"] == recipe.version
                config, merged = resolve_configuration(
                    current["configuration"] if current else None,
                    recipe.default_configuration,
                    updates.get(name),
                    current.get("merged", []) if current else [],
                )
                unchanged = same_version and (current["configuration"], current.get("merged", [])) == (
                    config,
                    merged,
                )
                # A HARD dependency that was restarted restarts its dependents (their steps may
                # interpolate its configuration), as the nucleus restarts them.
                hard_restarted = any(d.hard and d.name in restarted for d in recipe.dependencies)
                if unchanged and not hard_restarted and self._healthy(current):
                    continue
                if current:
                    self._stop(name, current, state)
                restarted.add(name)
                self._bring_up(recipe, config, merged, state, first_install=not same_version)
        finally:
            # No rollback: what came up stays up and is recorded, so `list` and `remove` can manage it.
            up = state["components"]
            state["roots"] = {
                **state["roots"],
                **{n: r for n, r in roots.items() if n in up and up[n]["state"] not in ("BROKEN", "NEW")},
            }
            self._save_state(state)
        return order

    def remove(self, names: list[str], cascade: bool = False) -> list[str]:
        """Remove components (and orphaned dependencies); returns what was removed, in stop order."""
        state = self._load_state()
        deployed = state["components"]
        for name in names:
            if name not in deployed:
                raise AgentError(
                    f"component {name} is not deployed in {self.root}; see `edge-agent component list`"
                )
        doomed = set(names)
        changed = True
        while changed:
            changed = False
            for other, info in deployed.items():
                if other not in doomed and any(dep in doomed for dep in info["dependencies"]):
                    if not cascade:
                        raise AgentError(
                            f"component {other} depends on {sorted(doomed & set(info['dependencies']))}; remove it "
                            "first or pass --cascade"
                        )
                    doomed.add(other)
                    changed = True
        roots = {n: r for n, r in state["roots"].items() if n not in doomed}
        needed = _closure(roots, {n: info["dependencies"] for n, info in deployed.items()})
        doomed |= set(deployed) - needed
        removed = [n for n in reversed(_order_from_state(deployed)) if n in doomed]
        for name in removed:
            self._stop(name, deployed[name], state)
            del deployed[name]
            self._log(name, "component removed")
        state["roots"] = roots
        self._save_state(state)
        return removed

    def remove_all(self) -> list[str]:
        state = self._load_state()
        return self.remove(list(state["components"]), cascade=True) if state["components"] else []

    def list(self) -> list[dict[str, Any]]:
        state = self._load_state()
        rows = []
        for name in _order_from_state(state["components"]):
            info = state["components"][name]
            rows.append(
                {
                    "name": name,
                    "version": info["version"],
                    "state": self._current_state(info),
                    "root": name in state["roots"],
                    "pid": info.get("pid"),
                    "log": str(self.log_path(name)),
                }
            )
        return rows

    def log_path(self, name: str) -> Path:
        return self.root / "logs" / f"{name}.log"

    def work_path(self, name: str) -> Path:
        return self.root / "work" / name

    # ----- resolution --------------------------------------------------------------------------

    def _resolve(self, roots: dict[str, str]) -> dict[str, Recipe]:
        """Highest version of each reachable component that meets every requirement (fixed point)."""
        chosen: dict[str, Recipe] = {}
        for _ in range(50):
            requirements: dict[str, list[str]] = {name: [req or "*"] for name, req in roots.items()}
            pending, seen = list(roots), set()
            while pending:
                name = pending.pop()
                if name in seen:
                    continue
                seen.add(name)
                for dep in chosen[name].dependencies if name in chosen else ():
                    requirements.setdefault(dep.name, []).append(dep.requirement)
                    pending.append(dep.name)
            picked = {name: self.store.best(name, reqs) for name, reqs in requirements.items()}
            if {n: r.version for n, r in picked.items()} == {n: r.version for n, r in chosen.items()}:
                return picked
            chosen = picked
        raise ResolutionError(f"component versions for {sorted(roots)} do not settle; check the requirements")

    # ----- lifecycle ---------------------------------------------------------------------------

    def _bring_up(
        self,
        recipe: Recipe,
        config: dict[str, Any],
        merged: list[str],
        state: dict[str, Any],
        first_install: bool,
    ) -> None:
        name = recipe.name
        steps, setenv, artifacts = recipe.select(self.platform)
        run_as = self.run_as
        artifact_dir = self.root / "packages" / "artifacts" / name / recipe.version
        unarchived_dir = self.root / "packages" / "artifacts-unarchived" / name / recipe.version
        for artifact in artifacts:
            target = self.store.fetch(recipe, artifact, artifact_dir / artifact.filename)
            _set_permission(target, artifact, run_as)
            if artifact.unarchive == "ZIP":
                unpacked = unarchived_dir / Path(artifact.filename).stem
                _unzip(target, unpacked)
                for path in unpacked.rglob("*"):
                    if path.is_file() and not path.is_symlink():
                        _set_permission(path, artifact, run_as)
        unarchived_dir.mkdir(parents=True, exist_ok=True)
        self.work_path(name).mkdir(parents=True, exist_ok=True)
        if run_as.switches:  # as RunWithPathOwnershipHandler: the step's user owns its folders
            for folder in (artifact_dir, unarchived_dir, self.work_path(name)):
                _chown_tree(folder, run_as)
        (self.root / "packages" / "recipes" / f"{name}-{recipe.version}.json").write_text(
            json.dumps(recipe.raw, indent=2), encoding="utf-8"
        )
        info: dict[str, Any] = {
            "version": recipe.version,
            "configuration": config,
            "merged": merged,
            "run_as": run_as.spec,  # later steps (shutdown at removal) run as the same user, as in the nucleus
            "dependencies": [d.name for d in recipe.dependencies],
            "pid": None,
            "state": "NEW",
        }
        state["components"][name] = info
        self._save_state(state)
        self._log(name, f"deploying version {recipe.version} (steps run as {run_as.user}:{run_as.group})")
        context = self._context(recipe, config, state)
        env = self._environment(recipe, setenv, context)

        def command(step_name: str) -> StepCommand:
            return self._command(recipe, step_name, steps[step_name], context, env, run_as)

        if first_install and "bootstrap" in steps:
            code = run_foreground(command("bootstrap"))
            if code in (100, 101):
                self._log(
                    name,
                    f"bootstrap asked for a {'nucleus' if code == 100 else 'device'} restart; the runner does not restart",
                )
            elif code != 0:  # the nucleus fails the deployment; there is no recover for bootstrap
                raise self._broken(name, info, state, "bootstrap", code, 1)
        if "install" in steps:
            self._until_done(name, "install", steps, command, info, state)
        info["state"] = "INSTALLED"
        if "startup" in steps:
            self._until_done(name, "startup", steps, command, info, state)
            info["state"] = "RUNNING"
        elif "run" in steps:
            run = command("run")
            if run.skipif and should_skip(run.skipif, run.env, run.root):
                # The nucleus reports RUNNING for a skipped run step, with no process behind it.
                self._log(name, f"run: skipped ({run.skipif})")
            else:
                info.update(self._start_supervisor(name, steps, command))
            info["state"] = "RUNNING"
        else:
            info["state"] = "FINISHED"
        self._save_state(state)

    def _until_done(
        self,
        name: str,
        step_name: str,
        steps: dict[str, Step],
        command: Callable[[str], StepCommand],
        info: dict[str, Any],
        state: dict[str, Any],
    ) -> None:
        """Run install or startup; on error, recover and try again until the error rule says BROKEN."""
        window = ErrorWindow()
        while True:
            code = run_foreground(command(step_name))
            if code == 0:
                return
            broken = window.record()
            if not broken:
                info["state"] = "ERRORED"
                self._save_state(state)
                self._log(
                    name, f"{step_name} exited with {code}: ERRORED ({len(window.times)} of 3 within an hour)"
                )
                if "recover" in steps:
                    run_foreground(command("recover"))
            # An errored startup is stopped (shutdown) before it is started again, as the nucleus does.
            if step_name == "startup" and "shutdown" in steps:
                run_foreground(command("shutdown"))
            if broken:
                raise self._broken(name, info, state, step_name, code, len(window.times))

    def _start_supervisor(
        self, name: str, steps: dict[str, Step], command: Callable[[str], StepCommand]
    ) -> dict[str, Any]:
        spec_path = self.root / "runner" / f"{name}.run.json"
        status_path = self.root / "runner" / f"{name}.status.json"
        status_path.unlink(missing_ok=True)
        spec = {
            "run": command("run").to_json(),
            "recover": command("recover").to_json() if "recover" in steps else None,
            "shutdown": command("shutdown").to_json() if "shutdown" in steps else None,
            "status": str(status_path),
        }
        write_json(spec_path, spec)
        with self.log_path(name).open("ab") as logfile:
            process = subprocess.Popen(
                [sys.executable, "-m", "edge_agent.greengrass_runner.supervisor", str(spec_path)],
                cwd=self.root / "runner",
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=logfile,
                start_new_session=True,
            )
        self._children[process.pid] = process
        return {"pid": process.pid, "status_file": str(status_path)}

    def _broken(
        self, name: str, info: dict[str, Any], state: dict[str, Any], step: str, code: int, errors: int
    ) -> LifecycleError:
        info["state"] = "BROKEN"
        self._save_state(state)
        self._log(name, f"BROKEN: {step} exited with {code}")
        return LifecycleError(
            f"component {name}: {step} exited with {code}"
            + (f" ({errors} errors within an hour: BROKEN)" if errors > 1 else "")
            + f"; see {self.log_path(name)}"
        )

    def _stop(self, name: str, info: dict[str, Any], state: dict[str, Any]) -> None:
        pid = info.get("pid")
        if pid and self._alive(pid):
            with contextlib.suppress(ProcessLookupError):  # no restart of run while shutdown runs
                os.kill(pid, signal.SIGUSR1)
        recipe_path = self.root / "packages" / "recipes" / f"{name}-{info['version']}.json"
        if recipe_path.is_file() and info.get("state") not in ("BROKEN", "NEW"):
            recipe = load_recipe(recipe_path)
            steps, setenv, _ = recipe.select(self.platform)
            if "shutdown" in steps:
                context = self._context(recipe, info["configuration"], state)
                env = self._environment(recipe, setenv, context)
                try:
                    run_as = RunAs.resolve(info["run_as"]) if info.get("run_as") else self.run_as
                except RunAsError as exc:  # the user is gone: stop the processes all the same
                    self._log(name, f"shutdown: not run: {exc}")
                else:
                    run_foreground(self._command(recipe, "shutdown", steps["shutdown"], context, env, run_as))
        if pid and self._alive(pid):
            self._terminate(pid)
        child = _read_json(Path(info.get("status_file", ""))).get("child_pgid")
        if child and group_alive(child):
            terminate_group(child, None)
        info["pid"] = None
        info["state"] = "STOPPED"

    def _context(self, recipe: Recipe, config: dict[str, Any], state: dict[str, Any]) -> Context:
        own = self._paths(recipe.name, recipe.version, config)
        deps = {}
        for dep in recipe.dependencies:
            info = state["components"].get(dep.name)
            if info:
                deps[dep.name] = self._paths(dep.name, info["version"], info["configuration"])
        return own, deps

    def _paths(self, name: str, version: str, config: dict[str, Any]) -> ComponentPaths:
        return ComponentPaths(
            artifacts=str(self.root / "packages" / "artifacts" / name / version),
            decompressed=str(self.root / "packages" / "artifacts-unarchived" / name / version),
            work=str(self.work_path(name)),
            configuration=config,
        )

    def _interpolate(self, text: str, context: Context) -> str:
        own, deps = context
        return interpolate(
            text,
            own,
            deps,
            str(self.root),
            self.thing_name,
            lambda msg: log.warning("op=interpolate unresolved=%s", msg),
        )

    def _environment(self, recipe: Recipe, setenv: dict[str, str], context: Context) -> dict[str, str]:
        """The nucleus-level setenv (self.env), then the recipe's lifecycle Setenv; never the runner's own."""
        env = dict(self.env)
        env.update({k: self._interpolate(v, context) for k, v in setenv.items()})
        return env

    def _command(
        self,
        recipe: Recipe,
        step_name: str,
        step: Step,
        context: Context,
        env: dict[str, str],
        run_as: RunAs,
    ) -> StepCommand:
        name = recipe.name
        if step.requires_privilege:
            if os.geteuid() == 0:
                run_as = RunAs.current()
            else:
                self._log(
                    name,
                    f"{step_name}: RequiresPrivilege, but the runner is not root: it runs as {run_as.user}",
                )
        dependencies = tuple(d.name for d in recipe.dependencies)
        step_env = base_environment(run_as, name, self.root, self.thing_name, self.region, dependencies)
        step_env.update(env)
        step_env.update({k: self._interpolate(v, context) for k, v in step.setenv.items()})
        return StepCommand(
            component=name,
            step=step_name,
            script=self._interpolate(step.script, context),
            env=step_env,
            cwd=str(self.work_path(name)),
            log=str(self.log_path(name)),
            root=str(self.root),
            timeout_s=step.timeout_s,
            skipif=self._interpolate(step.skipif, context) if step.skipif else None,
            run_as={
                "user": run_as.user,
                "group": run_as.group,
                "uid": run_as.uid,
                "gid": run_as.gid,
                "home": run_as.home,
            },
        )

    def _current_state(self, info: dict[str, Any]) -> str:
        if info.get("state") != "RUNNING" or not info.get("pid"):
            return info.get("state", "UNKNOWN")
        status = _read_json(Path(info.get("status_file", ""))).get("state")
        if self._alive(info["pid"]):
            return status if status in ("RUNNING", "ERRORED") else "RUNNING"
        return status if status in ("FINISHED", "BROKEN") else "ERRORED"

    def _healthy(self, info: dict[str, Any]) -> bool:
        return self._current_state(info) in ("RUNNING", "FINISHED")

    def _alive(self, pid: int) -> bool:
        child = self._children.get(pid)
        if child is not None:
            return child.poll() is None
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")

    def _terminate(self, pid: int) -> None:
        """SIGTERM the supervisor's process group, wait for every member to exit, then SIGKILL."""
        terminate_group(pid, self._children.get(pid))
        self._children.pop(pid, None)

    def _log(self, name: str, message: str) -> None:
        log_line(self.log_path(name), name, message)
        log.info("component=%s %s", name, message)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _set_permission(path: Path, artifact: Artifact, run_as: RunAs) -> None:
    """Artifact files get the recipe's Permission (default Read OWNER, Execute NONE), owned by the step's user."""
    mode = (
        _READ[artifact.permission.get("read", "OWNER")] | _EXECUTE[artifact.permission.get("execute", "NONE")]
    )
    if run_as.switches:
        os.chown(path, run_as.uid, run_as.gid)
    os.chmod(path, mode)


def _chown_tree(folder: Path, run_as: RunAs) -> None:
    os.chown(folder, run_as.uid, run_as.gid)
    for path in folder.rglob("*"):
        os.chown(path, run_as.uid, run_as.gid, follow_symlinks=False)


def _topological(recipes: dict[str, Recipe]) -> list[str]:
    return _order({name: [d.name for d in r.dependencies] for name, r in recipes.items()})


def _order_from_state(components: dict[str, Any]) -> list[str]:
    return _order(
        {name: [d for d in info["dependencies"] if d in components] for name, info in components.items()}
    )


def _order(graph: dict[str, list[str]]) -> list[str]:
    order: list[str] = []
    visiting: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        if name in order:
            return
        if name in visiting:
            raise ResolutionError(f"dependency cycle: {' -> '.join((*path, name))}")
        visiting.add(name)
        for dep in sorted(graph.get(name, [])):
            if dep in graph:
                visit(dep, (*path, name))
        visiting.discard(name)
        order.append(name)

    for name in sorted(graph):
        visit(name, ())
    return order


def _closure(roots: dict[str, str], graph: dict[str, list[str]]) -> set[str]:
    needed: set[str] = set()
    pending = list(roots)
    while pending:
        name = pending.pop()
        if name in needed:
            continue
        needed.add(name)
        pending.extend(graph.get(name, []))
    return needed


def _unzip(archive: Path, destination: Path) -> None:
    """Extract a ZIP, refusing entries that would land outside `destination`."""
    if destination.exists():
        shutil.rmtree(destination)
    destination.mkdir(parents=True)
    root = destination.resolve()
    with zipfile.ZipFile(archive) as handle:
        for member in handle.infolist():
            target = (destination / member.filename).resolve()
            if not target.is_relative_to(root):
                raise AgentError(
                    f"artifact {archive.name} has an entry outside its folder: {member.filename!r}"
                )
        handle.extractall(destination)
