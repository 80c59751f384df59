"""Device side of a model component: the lifecycle steps its recipe runs with the agent's Python.

    python -m edge_agent.component.model STEP ...   (published recipes call the old name,
    python -m edge_agent.packager.device, which forwards here)

    install  --source UNARCHIVED --target WORKDIR/model
        Builds a writable view of the read-only artifact folder (symlinks plus an `engines/`
        cache), checks the CPU features the package was built for, and on NVIDIA targets
        builds the TensorRT engine now when TensorRT and a matching GPU are present.
    link     --component NAME --model DIR --models-dir D --default-models-dir D2 [--autostart true]
        Points <models dir>/NAME at the model (atomically), so the running agent picks it up,
        then optionally starts it (EdgeAgentClient.start_model_if_needed, waiting for the agent).
    start    --source UNARCHIVED plus the link options: install, then link. The recipe's startup
        step runs this, because Greengrass starts a component only after its dependencies are
        running (the agent's venv exists then), while install may run earlier.
    unlink   removes that link if it still points at this component's model.

It runs inside the agent's virtual environment on the device (CPython 3.8 and later): the standard
library, and the agent's client for autostart; never yaml, onnx, torch or the packaging job.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from edge_agent.errors import AgentError

log = logging.getLogger("edge_agent.component.model")
TARGET_FILE = "target.json"
ENGINES_DIR = "engines"


def read_target(model_dir: Path) -> dict:
    """The package's target.json, or {} for packages that were not made by a packaging job."""
    path = model_dir / TARGET_FILE
    if not path.is_file():
        return {}
    return json.loads(path.read_text(encoding="utf-8"))


def install_view(source: Path, target: Path) -> Path:
    """Make `target` a writable folder whose files link to the read-only artifacts in `source`."""
    if not (source / "manifest.json").is_file():
        raise SystemExit(f"{source} holds no manifest.json: is the model artifact unarchived there?")
    target.mkdir(parents=True, exist_ok=True)
    for entry in source.iterdir():
        if entry.name == ENGINES_DIR:
            continue
        link = target / entry.name
        _replace_symlink(link, entry.resolve())
    engines = target / ENGINES_DIR
    engines.mkdir(exist_ok=True)
    prebuilt = source / ENGINES_DIR
    if prebuilt.is_dir():
        shutil.copytree(prebuilt, engines, dirs_exist_ok=True)
    for stale in target.iterdir():
        if stale.is_symlink() and not stale.exists():
            stale.unlink()
    return target


def cpu_flags(cpuinfo: str) -> set[str]:
    """Feature flags from /proc/cpuinfo text (x86 `flags`, ARM `Features`)."""
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            flags.update(value.split())
    return flags


def missing_cpu_features(target: dict, flags: set[str], machine: str) -> list[str]:
    """Features the package was compiled for that this CPU lacks (empty when all are present)."""
    info = target.get("target", {})
    if info.get("accelerator"):
        return []
    wanted: list[str] = list(target.get("cpu_requirements", {}).get("flags", []))
    arch = {"x86_64": "X86_64", "amd64": "X86_64", "aarch64": "ARM64", "arm64": "ARM64"}.get(machine.lower())
    if arch and info.get("arch") and arch != info.get("arch"):
        return [f"architecture {info.get('arch')} (this machine is {machine})"]
    return sorted(flag for flag in wanted if flag not in flags)


def check_cpu(target: dict) -> list[str]:
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    missing = missing_cpu_features(target, cpu_flags(cpuinfo), platform.machine())
    if missing:
        log.warning(
            "op=check_cpu missing=%s: the package was built for CPU options %s; ONNX Runtime will still "
            "run it with the kernels this CPU supports, but expect slower inference",
            missing,
            target.get("target", {}).get("compiler_options"),
        )
    return missing


def prebuild_engine(view: Path, target: dict) -> str:
    """Build the TensorRT engine at install when possible; otherwise the agent builds it at first start."""
    engine = target.get("engine") or {}
    if not engine:
        return "not an NVIDIA package"
    try:
        import tensorrt  # type: ignore[import-not-found]

        from edge_agent.runtime import tensorrt as trt_backend
    except ImportError:
        return "TensorRT is not importable here; the agent builds the engine at first start"
    try:
        gpu_code = trt_backend.local_gpu_code()
        if gpu_code != engine.get("gpu_code"):
            log.warning("op=prebuild_engine gpu=%s packaged_for=%s", gpu_code, engine.get("gpu_code"))
        path = trt_backend.load_or_build(
            view / "model.onnx", view / ENGINES_DIR, gpu_code, tensorrt.__version__
        )
    except Exception as exc:  # the agent retries at first start and reports the failure per model
        log.warning("op=prebuild_engine failed=%s", exc)
        return f"engine not built here ({exc}); the agent builds it at first start"
    return f"engine ready at {path}"


def warn_backend_mismatch(target: dict, agent_backend: str) -> str | None:
    """NVIDIA packages run on the CPU backend too (they ship ONNX), but slowly: say so once."""
    wanted = target.get("backend")
    backend = agent_backend.strip()
    if wanted == "tensorrt" and backend in ("", "cpu"):
        message = (
            "this model was packaged for an NVIDIA GPU but the agent's Backend is 'cpu'; it will run on the "
            "CPU. Set the agent component's Backend to 'gpu' or 'tensorrt' to use the GPU"
        )
        log.warning("op=check_backend %s", message)
        return message
    return None


def models_directory(models_dir: str, default_models_dir: str) -> Path:
    """The agent's models folder: its ModelsDirectory setting, or the default under its work folder."""
    chosen = models_dir.strip()
    if not chosen or (chosen.startswith("{") and chosen.endswith("}")):  # unset or not substituted
        chosen = default_models_dir
    return Path(chosen)


def link_model(component: str, model: Path, models_dir: Path) -> Path:
    models_dir.mkdir(parents=True, exist_ok=True)
    link = models_dir / component
    _replace_symlink(link, model.resolve())
    return link


def unlink_model(component: str, model: Path, models_dir: Path) -> bool:
    link = models_dir / component
    if link.is_symlink() and Path(os.readlink(link)) == model.resolve():
        link.unlink()
        return True
    return False


def _replace_symlink(link: Path, destination: Path) -> None:
    tmp = link.with_name(f".{link.name}.tmp-{os.getpid()}")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(destination, target_is_directory=destination.is_dir())
    os.replace(tmp, link)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(
        level="INFO", stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    parser = argparse.ArgumentParser(
        prog="python -m edge_agent.component.model", description=__doc__.splitlines()[0]
    )
    sub = parser.add_subparsers(dest="step", required=True)
    install = sub.add_parser("install")
    install.add_argument("--source", type=Path, required=True)
    install.add_argument("--target", type=Path, required=True)
    for name in ("link", "start", "unlink"):
        step = sub.add_parser(name)
        step.add_argument("--component", required=True)
        step.add_argument("--model", type=Path, required=True)
        step.add_argument("--models-dir", default="")
        step.add_argument("--default-models-dir", required=True)
        if name == "start":
            step.add_argument("--source", type=Path, required=True)
            step.add_argument(
                "--agent-backend", default="", help="the agent's Backend setting, for a mismatch warning"
            )
        if name != "unlink":
            step.add_argument("--socket", default="")
            step.add_argument("--autostart", default="false")
            step.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args(argv)
    if args.step in ("install", "start"):
        view = install_view(args.source, args.target if args.step == "install" else args.model)
        target = read_target(view)
        check_cpu(target)
        log.info("op=install model=%s engine=%s", view, prebuild_engine(view, target))
        if args.step == "install":
            return 0
        warn_backend_mismatch(target, args.agent_backend)
    models_dir = models_directory(args.models_dir, args.default_models_dir)
    if args.step == "unlink":
        removed = unlink_model(args.component, args.model, models_dir)
        log.info("op=unlink model=%s removed=%s", args.component, removed)
        return 0
    link = link_model(args.component, args.model, models_dir)
    log.info("op=link model=%s link=%s", args.component, link)
    if args.autostart.strip().lower() in ("true", "1", "yes"):
        try:
            status = autostart(args.socket, args.component, args.timeout)
        except (AgentError, TimeoutError) as exc:
            log.error("op=autostart model=%s failed=%s", args.component, exc)
            return 1
        log.info("op=autostart model=%s status=%s", args.component, status)
    return 0


def autostart(socket: str, component: str, timeout_s: float) -> str:
    """Start the model once the agent sees it; the loop is the client's start_model_if_needed."""
    from edge_agent.client import DEFAULT_SOCKET, EdgeAgentClient

    with EdgeAgentClient(socket.strip() or DEFAULT_SOCKET) as client:
        return client.start_model_if_needed(component, timeout_s=timeout_s, wait_for_agent=True).status


if __name__ == "__main__":
    sys.exit(main())
