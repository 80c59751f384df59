"""One packaging job: validate, compile for the target, zip, render the recipe, write, record.

Validation errors (bad configuration, not a model package, component version already published)
are raised before a job record exists, like the service's ValidationException/ConflictException.
Anything that goes wrong after that ends the job FAILED with the reason as its status message.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import tempfile
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from edge_agent import __version__
from edge_agent.errors import AgentError, InvalidInputError
from edge_agent.model_package import ModelPackage, load, save, sha256_file
from edge_agent.packager import compile_cpu, nvidia
from edge_agent.packager.catalogue import Catalogue, load_catalogue
from edge_agent.packager.config import GreengrassConfiguration, PackagingSpec, resolve
from edge_agent.packager.jobs import JobRecord, JobStore
from edge_agent.packager.output import Output, artifact_key, open_output, recipe_key
from edge_agent.packager.recipe import MODEL_ARTIFACT, model_recipe, to_json, to_yaml
from edge_agent.packager.samples import image_inputs, synthetic_inputs, write_package_samples

log = logging.getLogger(__name__)

JOB_NAME_RE = re.compile(r"^[a-zA-Z0-9-]{1,64}$")
TARGET_FILE = "target.json"
TARGET_FORMAT_VERSION = 1
# The compiled graph must agree with the source this closely (float rewrites only).
VERIFY_TOLERANCE = compile_cpu.Tolerance(max_score_diff=1e-4, min_mask_agreement=0.999)


class ConflictError(InvalidInputError):
    """The component name and version already exist at the output."""


@dataclass(frozen=True)
class PackagingRequest:
    model_dir: Path
    configuration: GreengrassConfiguration
    output: str | None = None
    job_name: str | None = None
    description: str = ""
    agent_component: str | None = None
    quantize: bool = False
    sample_images: Path | None = None
    tolerance: compile_cpu.Tolerance = field(default_factory=compile_cpu.Tolerance)


def start_job(
    request: PackagingRequest,
    store: JobStore,
    catalogue: Catalogue | None = None,
    output: Output | None = None,
) -> JobRecord:
    """Validate, create the job record and run it to SUCCEEDED or FAILED; returns the final record."""
    catalogue = catalogue or load_catalogue()
    job_name = request.job_name or str(uuid.uuid4())
    if not JOB_NAME_RE.fullmatch(job_name):
        raise InvalidInputError(f"job name {job_name!r} must be 1..64 characters of [a-zA-Z0-9-]")
    if request.quantize and request.sample_images is None:
        raise InvalidInputError(
            "--quantize needs --sample-images DIR: real normal and anomalous images of the model's size, on "
            "which the int8 model must agree with the float model (synthetic inputs alone have let int8 "
            "PatchCore models through that then disagreed on real images)"
        )
    if request.sample_images is not None and not request.sample_images.is_dir():
        raise InvalidInputError(f"--sample-images {request.sample_images} is not a folder")
    package = load(request.model_dir)
    package.verify_graph()
    spec = resolve(request.configuration, package.manifest.model_version, catalogue, request.output)
    output = output or open_output(spec.output)
    for suffix in ("json", "yaml"):
        if output.exists(recipe_key(spec.component_name, spec.component_version, suffix)):
            raise ConflictError(
                f"component {spec.component_name} {spec.component_version} already exists at {output.uri}; "
                "choose another --component-version"
            )
    agent = request.agent_component or catalogue.agent_component
    store.create(
        job_name, str(request.model_dir.resolve()), _request_json(request, spec, agent), request.description
    )
    store.transition(job_name, "RUNNING", f"packaging for {spec.target.label}")
    started = time.perf_counter()
    try:
        details = _package(package, spec, request, catalogue, output, agent, job_name)
    except AgentError as exc:
        log.error("op=package job=%s failed=%s", job_name, exc)
        return store.transition(job_name, "FAILED", str(exc))
    except Exception as exc:
        log.exception("op=package job=%s internal error", job_name)
        return store.transition(job_name, "FAILED", f"internal error: {type(exc).__name__}: {exc}")
    except BaseException:  # Ctrl-C, SystemExit: the record must not stay RUNNING
        store.transition(job_name, "FAILED", "interrupted")
        raise
    details["Greengrass"]["PackagingSeconds"] = round(time.perf_counter() - started, 3)
    message = f"packaged {spec.component_name} {spec.component_version} for {spec.target.label}"
    return store.transition(job_name, "SUCCEEDED", message, output=details)


def component_arn(name: str, version: str) -> str:
    """ComponentVersionArn-like id of a locally packaged component (account and region unknown here)."""
    return f"arn:aws:greengrass:local:000000000000:components:{name}:versions:{version}"


def _request_json(request: PackagingRequest, spec: PackagingSpec, agent: str) -> dict[str, Any]:
    return {
        "Greengrass": {
            "ComponentName": spec.component_name,
            "ComponentVersion": spec.component_version,
            "ComponentDescription": spec.component_description,
            "Target": spec.target.to_json(),
            "Output": spec.output,
            "Tags": [{"Key": k, "Value": v} for k, v in spec.tags.items()],
            "AgentComponent": agent,
            "Quantize": request.quantize,
        }
    }


def _package(
    package: ModelPackage,
    spec: PackagingSpec,
    request: PackagingRequest,
    catalogue: Catalogue,
    output: Output,
    agent: str,
    job_name: str,
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="edge-agent-package-") as scratch:
        stage = Path(scratch) / "model"
        stage.mkdir()
        samples = image_inputs(request.sample_images, package.manifest) + synthetic_inputs(package.manifest)
        if spec.target.is_nvidia:
            build = _compile_nvidia(package, spec, stage)
            # The device checks a TensorRT FP16 engine against the CPU on these (runtime/precision.py).
            write_package_samples(stage, image_inputs(request.sample_images, package.manifest))
        else:
            build = _compile_cpu(package, request, stage, samples, Path(scratch))
            build["cpu_requirements"] = cpu_requirements(spec, catalogue)
        manifest = replace(
            package.manifest,
            graph="model.onnx",
            graph_sha256="",
            provenance={**package.manifest.provenance, "packaging_job": job_name, "packager": __version__},
        )
        save(stage, manifest)
        agreement = compile_cpu.check_agreement(package.directory, stage, samples)
        quantized = build.get("optimization", {}).get("quantization", {}).get("applied", False)
        if not agreement.passes(request.tolerance if quantized else VERIFY_TOLERANCE):
            raise AgentError(
                f"the compiled graph disagrees with the source model on sample inputs ({agreement.to_json()}); "
                "report this with the model package"
            )
        build["verification"] = agreement.to_json()
        target_doc = {
            "format_version": TARGET_FORMAT_VERSION,
            "target": spec.target.to_json(),
            "source_graph_sha256": sha256_file(package.graph_path),
            **build,
        }
        (stage / TARGET_FILE).write_text(json.dumps(target_doc, indent=2) + "\n", encoding="utf-8")
        archive = Path(scratch) / MODEL_ARTIFACT
        _zip_dir(stage, archive)
        artifact_uri = output.artifact_uri(spec.component_name, spec.component_version, MODEL_ARTIFACT)
        recipe = model_recipe(spec, catalogue, artifact_uri, agent)
        name, version = spec.component_name, spec.component_version
        with _all_or_nothing(output) as put:
            stored_artifact = put(artifact_key(name, version, MODEL_ARTIFACT), archive)
            recipes = [
                put(recipe_key(name, version, "json"), to_json(recipe)),
                put(recipe_key(name, version, "yaml"), to_yaml(recipe)),
            ]
        return {
            "Greengrass": {
                "ComponentName": spec.component_name,
                "ComponentVersion": spec.component_version,
                "ComponentVersionArn": component_arn(spec.component_name, spec.component_version),
                "Artifacts": [stored_artifact],
                "ArtifactUri": artifact_uri,
                "ArtifactBytes": archive.stat().st_size,
                "Recipes": recipes,
                "Target": spec.target.label,
                "Backend": build["backend"],
                "Tags": spec.tags,
            }
        }


@contextmanager
def _all_or_nothing(output: Output) -> Iterator[Callable[[str, Path | str], str]]:
    """put(key, file or text) for one component's files: if any step fails, the ones already written
    are deleted, so a failed job leaves no half component (that would also block a retry)."""
    written: list[str] = []

    def put(key: str, content: Path | str) -> str:
        stored = output.put_file(key, content) if isinstance(content, Path) else output.put_text(key, content)
        written.append(key)
        return stored

    try:
        yield put
    except BaseException:
        for key in reversed(written):
            try:
                output.delete(key)
            except Exception as exc:  # keep the original error; say what is left behind
                log.error("op=package cleanup failed key=%s error=%s", key, exc)
        raise


def cpu_requirements(spec: PackagingSpec, catalogue: Catalogue) -> dict[str, Any]:
    """/proc/cpuinfo flags implied by mcpu and +mattr, checked (warn only) at install on the device."""
    options = spec.target.compiler_options
    flags = list(catalogue.cpu_models(spec.target.arch).get(options.get("mcpu", ""), []))
    for attr in options.get("mattr", []):
        if attr.startswith("+"):
            name = attr[1:]
            flags.append(catalogue.cpu_flag_names.get(name, name))
    return {"mcpu": options.get("mcpu"), "mattr": options.get("mattr", []), "flags": sorted(set(flags))}


def _compile_cpu(
    package: ModelPackage, request: PackagingRequest, stage: Path, samples: list, scratch: Path
) -> dict[str, Any]:
    graph = stage / "model.onnx"
    compile_cpu.optimize_graph(package.graph_path, graph, compile_cpu.CPU_LEVEL)
    quantization: dict[str, Any] = {"requested": request.quantize, "applied": False}
    if request.quantize:
        quantization.update(_try_quantize(package, request, stage, samples, scratch))
    return {"backend": "cpu", "optimization": {"level": compile_cpu.CPU_LEVEL, "quantization": quantization}}


def _try_quantize(
    package: ModelPackage, request: PackagingRequest, stage: Path, samples: list, scratch: Path
) -> dict[str, Any]:
    ops = compile_cpu.quantizable_ops(package.graph_path)
    if ops == 0:
        return {"reason": "the graph has no Conv/MatMul/Gemm to quantise; kept float"}
    candidate = scratch / "int8"
    candidate.mkdir()
    quantized = scratch / "int8-raw.onnx"
    compile_cpu.quantize_int8(package.graph_path, quantized, samples)
    compile_cpu.optimize_graph(quantized, candidate / "model.onnx", compile_cpu.CPU_LEVEL)
    save(candidate, replace(package.manifest, graph="model.onnx", graph_sha256=""))
    agreement = compile_cpu.check_agreement(package.directory, candidate, samples)
    result: dict[str, Any] = {
        "applied": False,
        "quantized_ops": ops,
        "accuracy_check": agreement.to_json(),
        "tolerance": request.tolerance.__dict__,
    }
    if agreement.passes(request.tolerance):
        shutil.copyfile(candidate / "model.onnx", stage / "model.onnx")
        result.update(applied=True, reason="int8 model agrees with the float model on the samples")
    else:
        result["reason"] = "int8 model drifts from the float model on the samples; kept float"
    log.info("op=quantize applied=%s check=%s", result["applied"], agreement.to_json())
    return result


def _compile_nvidia(package: ModelPackage, spec: PackagingSpec, stage: Path) -> dict[str, Any]:
    options = spec.target.compiler_options
    graph = stage / "model.onnx"
    # BASIC rewrites are provider-independent, so TensorRT sees only standard ONNX operators.
    compile_cpu.optimize_graph(package.graph_path, graph, compile_cpu.PORTABLE_LEVEL)
    host = nvidia.detect_host()
    plan = nvidia.plan_engine_build(options, host)
    engine: dict[str, Any] = {
        "gpu_code": options["gpu-code"],
        "trt_version": options["trt-ver"],
        "cuda_version": options["cuda-ver"],
        "prebuilt": None,
        "decision": plan.reason,
        "build_on_device": not plan.build_now,
        # What TensorRT 8.5 / 10.x would refuse in this graph, and whether the device's tensorrt
        # backend supports the target's release; the package still runs on the gpu and cpu backends.
        "tensorrt_problems": nvidia.tensorrt_problems(graph),
        "backend_support": nvidia.backend_support(options["trt-ver"]),
    }
    if plan.build_now:
        from edge_agent.runtime import tensorrt

        host_version = host.tensorrt_version or options["trt-ver"]
        # Filed under the version that built it: the device's runtime looks up trt.__version__.
        path = tensorrt.engine_path(stage / "engines", graph, options["gpu-code"], host_version)
        tensorrt.build_engine(graph, path)
        engine["prebuilt"] = str(path.relative_to(stage))
    log.info("op=compile_nvidia build_now=%s reason=%s", plan.build_now, plan.reason)
    return {"backend": "tensorrt", "optimization": {"level": compile_cpu.PORTABLE_LEVEL}, "engine": engine}


def _zip_dir(source: Path, archive: Path) -> None:
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as handle:
        for path in sorted(source.rglob("*")):
            if path.is_file():
                handle.write(path, path.relative_to(source).as_posix())
