"""Packaging configuration: target xor, compiler options per accelerator, names, versions, tags."""

from __future__ import annotations

import json

import pytest

from edge_agent.packager.catalogue import load_catalogue
from edge_agent.packager.config import (
    ConfigurationError,
    GreengrassConfiguration,
    parse_platform_flag,
    parse_tag_flag,
    resolve,
)
from edge_agent.packager.options import CompilerOptionsError
from edge_agent.packager.shorthand import parse_shorthand

CATALOGUE = load_catalogue()
X86 = {"Os": "LINUX", "Arch": "X86_64"}
NVIDIA = {"Os": "LINUX", "Arch": "X86_64", "Accelerator": "NVIDIA"}
GPU_OPTIONS = json.dumps({"gpu-code": "sm_75", "trt-ver": "8.6.1", "cuda-ver": "12.2"})


def spec(model_version: int = 1, output: str | None = "out", **fields: object):
    fields.setdefault("component_name", "com.example.Model")
    return resolve(GreengrassConfiguration(**fields), model_version, CATALOGUE, output)


def test_cpu_target_defaults_mcpu_to_core_avx2_on_x86_and_nothing_on_arm() -> None:
    assert spec(target_platform=X86).target.compiler_options == {"mcpu": "core-avx2"}
    arm = spec(target_platform={"Os": "LINUX", "Arch": "ARM64"})
    assert arm.target.compiler_options == {}
    assert arm.target.label == "linux-arm64-cpu"


def test_cpu_options_are_validated() -> None:
    result = spec(target_platform=X86, compiler_options='{"mcpu": "skylake-avx512", "mattr": ["+avx512f"]}')
    assert result.target.compiler_options == {"mcpu": "skylake-avx512", "mattr": ["+avx512f"]}
    with pytest.raises(CompilerOptionsError, match="Did you mean 'skylake'"):
        spec(target_platform=X86, compiler_options='{"mcpu": "skylak"}')
    for current in ("znver4", "sapphirerapids", "icelake-client", "x86-64-v3"):  # recent LLVM CPU names
        options = spec(
            target_platform=X86, compiler_options=f'{{"mcpu": "{current}"}}'
        ).target.compiler_options
        assert options == {"mcpu": current}
    arm = {"Os": "LINUX", "Arch": "ARM64"}
    options = spec(target_platform=arm, compiler_options='{"mcpu": "cortex-a76"}').target.compiler_options
    assert options == {"mcpu": "cortex-a76"}
    with pytest.raises(CompilerOptionsError, match="list of flags"):
        spec(target_platform=X86, compiler_options='{"mattr": ["neon"]}')
    with pytest.raises(CompilerOptionsError, match="applies to NVIDIA targets"):
        spec(target_platform=X86, compiler_options='{"gpu-code": "sm_75"}')
    with pytest.raises(CompilerOptionsError, match=r"did you mean 'gpu-code'.*applies to NVIDIA targets"):
        spec(target_platform=X86, compiler_options='{"gpu_code": "sm_75"}')


def test_nvidia_options_are_required_and_formatted() -> None:
    result = spec(target_platform=NVIDIA, compiler_options=GPU_OPTIONS)
    assert result.target.is_nvidia and result.target.compiler_options["gpu-code"] == "sm_75"
    with pytest.raises(CompilerOptionsError, match="lacks 'trt-ver'"):
        spec(target_platform=NVIDIA, compiler_options='{"gpu-code": "sm_75", "cuda-ver": "12.2"}')
    with pytest.raises(CompilerOptionsError, match="'gpu-code' is '75'"):
        spec(
            target_platform=NVIDIA,
            compiler_options='{"gpu-code": "75", "trt-ver": "8.6.1", "cuda-ver": "12.2"}',
        )
    with pytest.raises(CompilerOptionsError, match="'cuda-ver' is '12'"):
        spec(
            target_platform=NVIDIA,
            compiler_options='{"gpu-code": "sm_75", "trt-ver": "8.6.1", "cuda-ver": "12"}',
        )
    with pytest.raises(CompilerOptionsError, match="applies to CPU targets"):
        spec(target_platform=NVIDIA, compiler_options='{"mcpu": "core-avx2"}')


@pytest.mark.parametrize("typo", ["gpu_code", "GPU_CODE", "gpucode"])
def test_guide_typo_gpu_code_gets_did_you_mean(typo: str) -> None:
    text = json.dumps({typo: "sm_75", "trt-ver": "8.6.1", "cuda-ver": "12.2"})
    with pytest.raises(CompilerOptionsError, match="Did you mean 'gpu-code'"):
        spec(target_platform=NVIDIA, compiler_options=text)


def test_unknown_key_suggests_the_closest_valid_one() -> None:
    with pytest.raises(CompilerOptionsError, match="Did you mean 'trt-ver'"):
        spec(
            target_platform=NVIDIA,
            compiler_options='{"gpu-code": "sm_75", "trt-vers": "8", "cuda-ver": "1.2"}',
        )


@pytest.mark.parametrize("text", ["{}", "x" * 1025, "[1, 2]", "{bad json}"])
def test_compiler_options_text_limits(text: str) -> None:
    with pytest.raises(CompilerOptionsError):
        spec(target_platform=X86, compiler_options=text)


def test_shell_escaped_quotes_from_the_guide_template_are_accepted() -> None:
    text = '{\\"gpu-code\\": \\"sm_75\\", \\"trt-ver\\": \\"8.6.1\\", \\"cuda-ver\\": \\"12.2\\"}'
    assert spec(target_platform=NVIDIA, compiler_options=text).target.compiler_options["trt-ver"] == "8.6.1"


def test_target_device_fixes_platform_and_options() -> None:
    result = spec(target_device="jetson_xavier")
    target = result.target
    assert (target.os, target.arch, target.accelerator, target.device) == (
        "LINUX",
        "ARM64",
        "NVIDIA",
        "jetson_xavier",
    )
    assert target.compiler_options["gpu-code"] == "sm_72"
    with pytest.raises(ConfigurationError, match="not both"):
        spec(target_device="jetson_xavier", target_platform=X86)
    with pytest.raises(ConfigurationError, match="must not be set with TargetDevice"):
        spec(target_device="jetson_xavier", compiler_options=GPU_OPTIONS)
    with pytest.raises(ConfigurationError, match="Did you mean 'jetson_xavier'"):
        spec(target_device="jetson_xavir")
    with pytest.raises(ConfigurationError, match="give a target"):
        spec()


@pytest.mark.parametrize(
    ("platform", "fragment"),
    [
        ({"Os": "WINDOWS", "Arch": "X86_64"}, "Os is 'WINDOWS'"),
        ({"Os": "LINUX", "Arch": "ARMV7"}, "Arch is 'ARMV7'"),
        ({"Os": "LINUX", "Arch": "X86_64", "Accelerator": "AMD"}, "only accelerator is NVIDIA"),
        ({"Os": "LINUX", "Arch": "X86_64", "Gpu": "x"}, "unknown keys"),
    ],
)
def test_bad_platforms(platform: dict, fragment: str) -> None:
    with pytest.raises(ConfigurationError, match=fragment):
        spec(target_platform=platform)


@pytest.mark.parametrize("name", ["", "has space", "a/b", "x" * 129, "com.example.M\n"])
def test_component_name_pattern(name: str) -> None:
    with pytest.raises(ConfigurationError, match="ComponentName"):
        spec(component_name=name, target_platform=X86)


def test_component_name_limits_accept_the_pattern() -> None:
    assert spec(component_name="A-b_c.9" + "x" * 121, target_platform=X86).component_name.startswith(
        "A-b_c.9"
    )


def test_version_defaults_to_model_version_and_must_be_semver() -> None:
    assert spec(model_version=3, target_platform=X86).component_version == "3.0.0"
    assert spec(component_version="0.1.0", target_platform=X86).component_version == "0.1.0"
    for bad in ("1.0", "1.0.0-rc1", "1234567.0.0", "v1.0.0", "1.0.0\n"):
        with pytest.raises(ConfigurationError, match="ComponentVersion"):
            spec(component_version=bad, target_platform=X86)


def test_output_from_s3_location_and_conflicts() -> None:
    assert (
        spec(output=None, target_platform=X86, s3_output={"Bucket": "b", "Prefix": "/p/q/"}).output
        == "s3://b/p/q"
    )
    assert (
        spec(output="s3://b/p", target_platform=X86, s3_output={"Bucket": "b", "Prefix": "p"}).output
        == "s3://b/p"
    )
    with pytest.raises(ConfigurationError, match="differ"):
        spec(output="elsewhere", target_platform=X86, s3_output={"Bucket": "b", "Prefix": "p"})
    with pytest.raises(ConfigurationError, match="--output"):
        spec(output=None, target_platform=X86)


def test_tags() -> None:
    result = spec(
        target_platform=X86, tags=[{"Key": "stage", "Value": "prod"}, parse_tag_flag("team=vision")]
    )
    assert result.tags == {"stage": "prod", "team": "vision"}
    with pytest.raises(ConfigurationError, match="given twice"):
        spec(target_platform=X86, tags=[{"Key": "a", "Value": "1"}, {"Key": "a", "Value": "2"}])
    with pytest.raises(ConfigurationError, match="aws:"):
        spec(target_platform=X86, tags=[{"Key": "aws:x", "Value": "1"}])


def test_configuration_document_and_flags_merge() -> None:
    document = parse_shorthand(
        "Greengrass={TargetPlatform={Os='LINUX',Arch='ARM64'},ComponentName='X',S3OutputLocation={Bucket='b',Prefix='p'}}"
    )
    from_doc = GreengrassConfiguration.from_document(document)
    merged = GreengrassConfiguration(component_version="2.0.0").merged_with(from_doc)
    result = resolve(merged, 1, CATALOGUE, None)
    assert (result.component_name, result.component_version, result.output) == ("X", "2.0.0", "s3://b/p")
    with pytest.raises(ConfigurationError, match="both as a flag"):
        GreengrassConfiguration(component_name="Y").merged_with(from_doc)
    with pytest.raises(ConfigurationError, match="Did you mean 'ComponentName'"):
        GreengrassConfiguration.from_document({"Greengrass": {"ComponentNam": "X"}})


def test_platform_and_tag_flags() -> None:
    assert parse_platform_flag("os=LINUX,arch=X86_64,accelerator=NVIDIA") == NVIDIA
    with pytest.raises(ConfigurationError):
        parse_platform_flag("os")
    with pytest.raises(ConfigurationError):
        parse_tag_flag("novalue")
