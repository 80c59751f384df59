"""Offline install of the agent (or the sample client) from the agent component's wheelhouse.

Shipped in the agent component's ZIP as `lookoutvision_edge_agent/install.py` and run by the
install step with the component's virtual environment Python, before this package is installed:

    venv/bin/python .../lookoutvision_edge_agent/install.py --backend cpu|gpu|tensorrt
        [--extra-site-packages DIR[:DIR]] [--pip-options '...'] [--packages agent|client]

So: standard library only, CPython 3.8 syntax. It never reaches an index: pip runs with
`--no-index --find-links <wheelhouse>/wheels`, with pip's configuration files and PIP_* variables
of the device ignored. The wheelhouse (built by `edge-agent component build-agent`) holds:

    wheelhouse.json      version, platform, Python tags built, the agent's wheel file name
    wheels/*.whl         every wheel of every set, for every Python version built
    cpXY/<set>.txt       exact pins of one set for CPython X.Y: base (no ONNX Runtime), cpu
                         (onnxruntime), gpu (onnxruntime-gpu), tensorrt (tensorrt, cuda-python),
                         client (grpcio, protobuf, Pillow), pip (a pip that knows manylinux_2_28)

`onnxruntime` and `onnxruntime-gpu` never end up in one environment (both installed hide the
CUDA provider): a set has at most one, the other is uninstalled from the venv when the Backend
changes, and the step fails if ExtraSitePackages still brings in the wrong one.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import sysconfig
from collections.abc import Sequence
from pathlib import Path

EXTRA_PTH = "edge_agent_extra.pth"
ORT_CPU, ORT_GPU = "onnxruntime", "onnxruntime-gpu"
RUNTIME_MODULE = {"gpu": "onnxruntime", "tensorrt": "tensorrt"}
BACKENDS = ("cpu", "gpu", "tensorrt")


class InstallError(Exception):
    """The install cannot go on; the message says what to change."""


def python_tag(version_info: Sequence[int] = tuple(sys.version_info[:2])) -> str:
    return f"cp{version_info[0]}{version_info[1]}"


def read_manifest(wheelhouse: Path) -> dict[str, object]:
    path = wheelhouse / "wheelhouse.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InstallError(
            f"{path} is missing or unreadable ({exc}): is the agent component's ZIP unarchived?"
        ) from None


def choose_set(manifest: dict[str, object], tag: str, backend: str, packages: str, extra_site: str) -> str:
    """Which requirement set to install for this Python, Backend and ExtraSitePackages."""
    built = manifest.get("sets", {})
    assert isinstance(built, dict)
    sets = built.get(tag)
    if not sets:
        versions = ", ".join(sorted(built)) or "none"
        raise InstallError(
            f"the wheelhouse has no wheels for this Python ({tag}; built for: {versions}). Rebuild the agent "
            f"component with `edge-agent component build-agent --python-version {tag[2]}.{tag[3:]}` or set "
            "PythonCommand to an interpreter it was built for"
        )
    if packages == "client":
        return "client"
    if backend not in BACKENDS:
        raise InstallError(f"Backend is {backend!r}; expected one of {', '.join(BACKENDS)}")
    if backend == "cpu" or backend in sets:
        return backend
    if extra_site:
        return (
            "base"  # the runtime comes pre-installed (Jetson: JetPack's TensorRT, NVIDIA's onnxruntime-gpu)
        )
    raise InstallError(
        f"Backend is {backend!r} but this agent component was built without its wheels (sets: {', '.join(sets)}). "
        f"Rebuild with `--backend {backend}` (x86-64), or, where the runtime is pre-installed (Jetson: TensorRT "
        "from JetPack, onnxruntime-gpu from NVIDIA's Jetson builds), set ExtraSitePackages to its site-packages"
    )


def read_pins(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def pin_names(pins: Sequence[str]) -> list[str]:
    return [normalise(pin.split("==", 1)[0]) for pin in pins]


def normalise(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def write_extra_site_packages(extra_site: str) -> Path | None:
    """A .pth file in the venv's site-packages adds the pre-installed folders (removed when unset)."""
    pth = Path(sysconfig.get_paths()["purelib"]) / EXTRA_PTH
    folders = [folder for folder in extra_site.split(":") if folder.strip()]
    if not folders:
        if pth.exists():
            pth.unlink()
        return None
    pth.write_text("".join(folder.strip() + "\n" for folder in folders), encoding="utf-8")
    return pth


def installed_here() -> dict[str, Path]:
    """Distributions installed inside this venv (not those that ExtraSitePackages adds)."""
    from importlib import metadata

    prefix = Path(sys.prefix).resolve()
    found = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        location = Path(str(dist.locate_file(""))).resolve()
        if name and (location == prefix or prefix in location.parents):
            found[normalise(name)] = location
    return found


def pip_environment() -> dict[str, str]:
    """The device's pip configuration must not send pip to an index or add constraints."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PIP_")}
    env.update(
        {
            "PIP_CONFIG_FILE": os.devnull,
            "PIP_NO_INDEX": "1",
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
            "PIP_NO_INPUT": "1",
        }
    )
    return env


def pip(arguments: Sequence[str], options: Sequence[str]) -> None:
    command = [sys.executable, "-m", "pip", *arguments, *options]
    print("install: " + " ".join(shlex.quote(word) for word in command), flush=True)
    done = subprocess.run(command, env=pip_environment())
    if done.returncode != 0:
        raise InstallError(f"pip exited with {done.returncode}: see the lines above")


def check_runtimes(backend: str, chosen: str) -> None:
    """In a fresh interpreter (so the .pth applies): never both ONNX Runtimes; the runtime imports."""
    code = (
        "import importlib, json, sys\n"
        "from importlib import metadata\n"
        "names = {d.metadata['Name'].lower() for d in metadata.distributions() if d.metadata['Name']}\n"
        "module = sys.argv[1]\n"
        "ok = True\n"
        "if module:\n"
        "    try:\n"
        "        importlib.import_module(module)\n"
        "    except Exception as exc:\n"
        "        ok = repr(exc)\n"
        "print(json.dumps({'names': sorted(names), 'import': ok}))\n"
    )
    module = RUNTIME_MODULE.get(backend, "") if chosen == "base" else ""
    done = subprocess.run([sys.executable, "-c", code, module], capture_output=True, text=True)
    if done.returncode != 0:
        raise InstallError(f"cannot inspect the installed packages: {done.stderr.strip()}")
    report = json.loads(done.stdout)
    names = set(report["names"])
    if ORT_CPU in names and ORT_GPU in names:
        raise InstallError(
            "both onnxruntime and onnxruntime-gpu are visible to the agent, which hides the CUDA provider: "
            "remove the one the Backend does not use from the folders in ExtraSitePackages"
        )
    if report["import"] is not True:
        raise InstallError(
            f"Backend {backend!r} needs the Python module {module!r} from ExtraSitePackages, but importing it "
            f"failed: {report['import']}"
        )


def _importable(*modules: str) -> bool:
    """In a fresh interpreter, so that a .pth written just now applies."""
    code = "import importlib, sys\nfor m in sys.argv[1:]: importlib.import_module(m)"
    return subprocess.run([sys.executable, "-c", code, *modules], capture_output=True).returncode == 0


def install(
    wheelhouse: Path, backend: str, extra_site: str = "", pip_options: str = "", packages: str = "agent"
) -> str:
    """Install one set into the running interpreter's environment; returns the set's name."""
    manifest = read_manifest(wheelhouse)
    tag = python_tag()
    backend = backend.strip() or "cpu"
    chosen = choose_set(manifest, tag, backend, packages, extra_site.strip())
    wheels = wheelhouse / "wheels"
    options = ["--no-index", "--find-links", str(wheels), *shlex.split(pip_options)]
    write_extra_site_packages(extra_site)
    if (wheelhouse / tag / "pip.txt").is_file():  # Ubuntu 20.04's venv pip (20.0) predates manylinux_2_28
        pip(["install", "-q", "-r", str(wheelhouse / tag / "pip.txt")], options)
    if packages == "client" and _importable("grpc", "google.protobuf", "PIL"):
        print("install: grpcio, protobuf and Pillow already importable (ExtraSitePackages)", flush=True)
        return "none"
    pins = read_pins(wheelhouse / tag / f"{chosen}.txt")
    if packages == "agent":
        wanted = set(pin_names(pins))
        stale = [name for name in (ORT_CPU, ORT_GPU) if name in installed_here() and name not in wanted]
        if stale:  # the Backend changed: the other ONNX Runtime must go first
            pip(["uninstall", "-y", *stale], [])
    if pins:
        pip(["install", *pins], options)
    if packages == "agent":
        agent_wheel = wheels / str(manifest["agent_wheel"])
        pip(["install", "--no-deps", "--force-reinstall", str(agent_wheel)], options)
        check_runtimes(backend, chosen)
    print(f"install: {packages} installed from the wheelhouse (set {chosen}, {tag}, no index)", flush=True)
    return chosen


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--wheelhouse",
        type=Path,
        default=Path(__file__).resolve().parent / "wheelhouse",
        help="wheelhouse folder",
    )
    parser.add_argument("--backend", default="cpu", help="the agent's Backend: cpu, gpu or tensorrt")
    parser.add_argument(
        "--extra-site-packages", default="", help="pre-installed site-packages, ':'-separated"
    )
    parser.add_argument(
        "--pip-options", default="", help="more pip install options (the PipInstallOptions key)"
    )
    parser.add_argument("--packages", choices=["agent", "client"], default="agent")
    args = parser.parse_args(argv)
    try:
        install(args.wheelhouse, args.backend, args.extra_site_packages, args.pip_options, args.packages)
    except InstallError as exc:
        print(f"install: error: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
