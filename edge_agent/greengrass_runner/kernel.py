"""A local stand-in for the Greengrass nucleus: deploy, run and remove components from recipes.

How this works:
- `deploy` adds root components (name -> version requirement), resolves their dependencies
  transitively (highest version that meets every requirement), and processes components in
  dependency order. For each one it copies artifacts to packages/artifacts/<name>/<version>,
  unpacks ZIPs to packages/artifacts-unarchived/<name>/<version>/<zip stem>, merges the
  configuration, then runs bootstrap (first install), install, and startup (waited for) or
  run (left in the background), as the recipe reference describes. A component's dependents
  start only after its startup succeeded or its run began.
- Step scripts run with `sh -c` in work/<name>, output appended to logs/<name>.log.
- `remove` runs shutdown, stops the run process group, forgets the component, and removes the
  dependencies nothing else needs. It refuses to remove a component others depend on unless
  `cascade` removes those too.
- State (roots, versions, configuration, run pids) lives in runner/state.json, so the CLI can
  deploy in one call and remove in another while the processes keep running in between.

Not modelled: RequiresPrivilege (runs as the current user, with a warning), restarts on HARD
dependency state changes, recover, IPC, and the cloud deployment service.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import shutil
import signal
import subprocess
import time
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edge_agent.errors import AgentError
from edge_agent.greengrass_runner.recipe import Recipe, Step, host_platform
from edge_agent.greengrass_runner.store import ComponentStore, ResolutionError
from edge_agent.greengrass_runner.variables import ComponentPaths, interpolate

log = logging.getLogger(__name__)
STOP_GRACE_S = 10.0
DEFAULT_THING_NAME = "local-core-device"


class LifecycleError(AgentError):
    """A lifecycle step failed; the component log has its output."""


@dataclass
class ConfigurationUpdate:
    """Greengrass configurationUpdate: `reset` pointers first, then `merge` (JSON text or object)."""

    merge: dict[str, Any] = field(default_factory=dict)
    reset: list[str] = field(default_factory=list)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ConfigurationUpdate:
        merge = data.get("merge") or {}
        if isinstance(merge, str):
            try:
                merge = json.loads(merge)
            except json.JSONDecodeError as exc:
                raise AgentError(f"configurationUpdate.merge is not valid JSON: {exc}") from None
        if not isinstance(merge, dict):
            raise AgentError("configurationUpdate.merge must be a JSON object")
        return cls(merge=merge, reset=list(data.get("reset") or []))


class Kernel:
    """One Greengrass-like root folder and the components deployed into it."""

    def __init__(
        self,
        root: Path,
        store: ComponentStore | None = None,
        thing_name: str = DEFAULT_THING_NAME,
        platform_overrides: dict[str, str] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.root = root.resolve()
        self.store = store or ComponentStore()
        self.thing_name = thing_name
        self.platform = host_platform(platform_overrides)
        self.env = dict(env or {})
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

    # ----- state -------------------------------------------------------------------------------

    @property
    def _state_path(self) -> Path:
        return self.root / "runner" / "state.json"

    def _load_state(self) -> dict[str, Any]:
        if self._state_path.is_file():
            return json.loads(self._state_path.read_text(encoding="utf-8"))
        return {"roots": {}, "components": {}}

    def _save_state(self, state: dict[str, Any]) -> None:
        tmp = self._state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(tmp, self._state_path)

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
        if replace:
            deployed = state["components"]
            for name in reversed(_order_from_state(deployed)):
                if name not in recipes:
                    self._stop(name, deployed[name], state)
                    del deployed[name]
                    self._log(name, "component removed (not in the deployment)")
        try:
            for name in order:
                recipe = recipes[name]
                current = state["components"].get(name)
                same_version = bool(current) and current["version"] == recipe.version
                base = current["configuration"] if same_version else recipe.default_configuration
                config = _apply_update(base, updates.get(name))
                if same_version and current["configuration"] == config and self._healthy(current):
                    continue
                if current:
                    self._stop(name, current, state)
                self._bring_up(recipe, config, state, first_install=not same_version)
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
        self, recipe: Recipe, config: dict[str, Any], state: dict[str, Any], first_install: bool
    ) -> None:
        name = recipe.name
        steps, setenv, artifacts = recipe.select(self.platform)
        artifact_dir = self.root / "packages" / "artifacts" / name / recipe.version
        unarchived_dir = self.root / "packages" / "artifacts-unarchived" / name / recipe.version
        for artifact in artifacts:
            target = self.store.fetch(recipe, artifact, artifact_dir / artifact.filename)
            if artifact.unarchive == "ZIP":
                _unzip(target, unarchived_dir / Path(artifact.filename).stem)
        unarchived_dir.mkdir(parents=True, exist_ok=True)
        self.work_path(name).mkdir(parents=True, exist_ok=True)
        (self.root / "packages" / "recipes" / f"{name}-{recipe.version}.json").write_text(
            json.dumps(recipe.raw, indent=2), encoding="utf-8"
        )
        info: dict[str, Any] = {
            "version": recipe.version,
            "configuration": config,
            "dependencies": [d.name for d in recipe.dependencies],
            "pid": None,
            "state": "NEW",
        }
        state["components"][name] = info
        self._save_state(state)
        self._log(name, f"deploying version {recipe.version}")
        context = self._context(recipe, config, state)
        env = self._environment(setenv, context)
        if first_install and "bootstrap" in steps:
            code = self._run_step(name, "bootstrap", steps["bootstrap"], context, env, check=False)
            if code in (100, 101):
                self._log(
                    name,
                    f"bootstrap asked for a {'nucleus' if code == 100 else 'device'} restart; the runner does not restart",
                )
            elif code != 0:
                raise self._broken(name, info, state, "bootstrap", code)
        if "install" in steps:
            code = self._run_step(name, "install", steps["install"], context, env, check=False)
            if code != 0:
                raise self._broken(name, info, state, "install", code)
        info["state"] = "INSTALLED"
        if "startup" in steps:
            code = self._run_step(name, "startup", steps["startup"], context, env, check=False)
            if code != 0:
                raise self._broken(name, info, state, "startup", code)
            info["state"] = "RUNNING"
        elif "run" in steps:
            info.update(self._start_background(name, steps["run"], context, env))
            info["state"] = "RUNNING"
        else:
            info["state"] = "FINISHED"
        self._save_state(state)

    def _broken(
        self, name: str, info: dict[str, Any], state: dict[str, Any], step: str, code: int
    ) -> LifecycleError:
        info["state"] = "BROKEN"
        self._save_state(state)
        return LifecycleError(f"component {name}: {step} exited with {code}; see {self.log_path(name)}")

    def _stop(self, name: str, info: dict[str, Any], state: dict[str, Any]) -> None:
        recipe_path = self.root / "packages" / "recipes" / f"{name}-{info['version']}.json"
        if recipe_path.is_file() and info.get("state") not in ("BROKEN", "NEW"):
            from edge_agent.greengrass_runner.recipe import load_recipe

            recipe = load_recipe(recipe_path)
            steps, setenv, _ = recipe.select(self.platform)
            if "shutdown" in steps:
                context = self._context(recipe, info["configuration"], state)
                self._run_step(
                    name,
                    "shutdown",
                    steps["shutdown"],
                    context,
                    self._environment(setenv, context),
                    check=False,
                )
        pid = info.get("pid")
        if pid and self._alive(pid):
            self._terminate(pid)
        info["pid"] = None
        info["state"] = "STOPPED"

    def _context(
        self, recipe: Recipe, config: dict[str, Any], state: dict[str, Any]
    ) -> tuple[ComponentPaths, dict[str, ComponentPaths]]:
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

    def _interpolate(self, text: str, context: tuple[ComponentPaths, dict[str, ComponentPaths]]) -> str:
        own, deps = context
        return interpolate(
            text,
            own,
            deps,
            str(self.root),
            self.thing_name,
            lambda msg: log.warning("op=interpolate unresolved=%s", msg),
        )

    def _environment(
        self, setenv: dict[str, str], context: tuple[ComponentPaths, dict[str, ComponentPaths]]
    ) -> dict[str, str]:
        env = {
            **os.environ,
            **self.env,
            "AWS_IOT_THING_NAME": self.thing_name,
            "GG_ROOT_PATH": str(self.root),
        }
        env.update({k: self._interpolate(v, context) for k, v in setenv.items()})
        return env

    def _run_step(
        self,
        name: str,
        step_name: str,
        step: Step,
        context: tuple[ComponentPaths, dict[str, ComponentPaths]],
        env: dict[str, str],
        check: bool,
    ) -> int:
        if step.requires_privilege:
            self._log(name, f"{step_name}: RequiresPrivilege is true; the runner runs it as the current user")
        if step.skipif and self._skip(step.skipif, context, env):
            self._log(name, f"{step_name}: skipped ({step.skipif})")
            return 0
        script = self._interpolate(step.script, context)
        step_env = {**env, **{k: self._interpolate(v, context) for k, v in step.setenv.items()}}
        self._log(name, f"{step_name}: running script")
        with self.log_path(name).open("ab") as logfile:
            process = subprocess.Popen(
                ["/bin/sh", "-c", script],
                cwd=self.work_path(name),
                env=step_env,
                stdout=logfile,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            self._children[process.pid] = process
            try:
                code = process.wait(timeout=step.timeout_s)
            except subprocess.TimeoutExpired:
                self._terminate(process.pid)
                process.wait()
                self._log(name, f"{step_name}: timed out after {step.timeout_s:.0f} s")
                return 124
            finally:
                self._children.pop(process.pid, None)
        self._log(name, f"{step_name}: exited with {code}")
        return code

    def _skip(
        self, skipif: str, context: tuple[ComponentPaths, dict[str, ComponentPaths]], env: dict[str, str]
    ) -> bool:
        kind, _, target = self._interpolate(skipif, context).strip().partition(" ")
        if kind == "onpath":
            return shutil.which(target.strip(), path=env.get("PATH")) is not None
        if kind == "exists":
            return Path(target.strip()).exists()
        raise AgentError(f"Skipif {skipif!r} must be 'onpath EXECUTABLE' or 'exists FILE'")

    def _start_background(
        self,
        name: str,
        step: Step,
        context: tuple[ComponentPaths, dict[str, ComponentPaths]],
        env: dict[str, str],
    ) -> dict[str, Any]:
        script = self._interpolate(step.script, context)
        exit_file = self.root / "runner" / f"{name}.exit"
        exit_file.unlink(missing_ok=True)
        step_env = {**env, **{k: self._interpolate(v, context) for k, v in step.setenv.items()}}
        wrapper = 'sh -c "$1"; rc=$?; echo $rc > "$2"; exit $rc'
        self._log(name, "run: starting in the background")
        with self.log_path(name).open("ab") as logfile:
            process = subprocess.Popen(
                ["/bin/sh", "-c", wrapper, "edge-agent-runner", script, str(exit_file)],
                cwd=self.work_path(name),
                env=step_env,
                stdout=logfile,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self._children[process.pid] = process
        return {"pid": process.pid, "exit_file": str(exit_file)}

    def _current_state(self, info: dict[str, Any]) -> str:
        if info.get("state") != "RUNNING" or not info.get("pid"):
            return info.get("state", "UNKNOWN")
        if self._alive(info["pid"]):
            return "RUNNING"
        exit_file = Path(info.get("exit_file", ""))
        code = exit_file.read_text().strip() if exit_file.is_file() else ""
        return "FINISHED" if code == "0" else "ERRORED"

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
        """SIGTERM the whole process group, wait for every member to exit, then SIGKILL."""
        for sig, wait_s in ((signal.SIGTERM, STOP_GRACE_S), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(pid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + wait_s
            while time.monotonic() < deadline and self._group_alive(pid):
                time.sleep(0.05)
            if not self._group_alive(pid):
                break
        self._children.pop(pid, None)

    def _group_alive(self, pgid: int) -> bool:
        """Any live (non-zombie) process left in the group? Read from /proc, so it works whoever the parent is."""
        child = self._children.get(pgid)
        if child is not None:
            child.poll()  # reap our own leader
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
                return True
        return False

    def _log(self, name: str, message: str) -> None:
        stamp = datetime.now(UTC).isoformat(timespec="milliseconds")
        with self.log_path(name).open("a", encoding="utf-8") as handle:
            handle.write(f"{stamp} [INFO] (edge-agent-runner) {name}: {message}\n")
        log.info("component=%s %s", name, message)


def _apply_update(base: dict[str, Any], update: ConfigurationUpdate | None) -> dict[str, Any]:
    config = copy.deepcopy(base)
    if update is None:
        return config
    for pointer in update.reset:
        parts = [p for p in pointer.lstrip("/").split("/") if p]
        if not parts:
            config = {}
            continue
        node = config
        for part in parts[:-1]:
            node = node.get(part, {}) if isinstance(node, dict) else {}
        if isinstance(node, dict):
            node.pop(parts[-1], None)
    return _deep_merge(config, update.merge)


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            base[key] = _deep_merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


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
