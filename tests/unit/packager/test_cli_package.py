"""`edge-agent package` through the real CLI entry point (in-process)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge_agent.cli import main

GUIDE_CONFIGURATION = (
    "Greengrass={TargetPlatform={Os='LINUX',Arch='X86_64',Accelerator='NVIDIA'},"
    'CompilerOptions=\'{"gpu-code": "sm_75", "trt-ver": "8.6.1", "cuda-ver": "12.2"}\','
    "ComponentName='X',ComponentVersion='0.1.0',ComponentDescription='d',Tags=[{Key='k',Value='v'}]}"
)


@pytest.fixture
def db(tmp_path: Path) -> list[str]:
    return ["--jobs-db", str(tmp_path / "jobs.sqlite3")]


def test_replayed_configuration_then_list_and_describe(
    blob_model: Path, tmp_path: Path, db: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    out = str(tmp_path / "out")
    code = main(
        [
            "package",
            str(blob_model),
            "--configuration",
            GUIDE_CONFIGURATION,
            "--output",
            out,
            "--job-name",
            "j1",
            *db,
        ]
    )
    assert code == 0
    described = json.loads(capsys.readouterr().out)
    assert described["JobName"] == "j1" and described["Status"] == "SUCCEEDED"
    assert described["ModelPackagingOutputDetails"]["Greengrass"]["ComponentVersion"] == "0.1.0"
    assert described["ModelPackagingOutputDetails"]["Greengrass"]["Tags"] == {"k": "v"}
    assert main(["package", "list", "--json", *db]) == 0
    listed = json.loads(capsys.readouterr().out)["ModelPackagingJobs"]
    assert [(j["JobName"], j["Status"], j["ComponentName"]) for j in listed] == [("j1", "SUCCEEDED", "X")]
    assert main(["package", "describe", "j1", *db]) == 0
    assert (
        json.loads(capsys.readouterr().out)["ModelPackagingConfiguration"]["Greengrass"]["Target"][
            "accelerator"
        ]
        == "NVIDIA"
    )


def test_flags_form_uses_a_uuid_job_name(
    blob_model: Path, tmp_path: Path, db: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    args = [
        "package",
        str(blob_model),
        "--component-name",
        "Y",
        "--target-platform",
        "os=LINUX,arch=ARM64",
        "--output",
        str(tmp_path / "o"),
    ]
    assert main([*args, "--tag", "a=1", *db]) == 0
    job_name = json.loads(capsys.readouterr().out)["JobName"]
    assert len(job_name) == 36 and job_name.count("-") == 4


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            [
                "--target-platform",
                "os=LINUX,arch=X86_64,accelerator=NVIDIA",
                "--compiler-options",
                '{"gpu_code": "sm_75"}',
            ],
            "Did you mean 'gpu-code'",
        ),
        (
            ["--target-device", "jetson_xavier", "--compiler-options", '{"gpu-code": "sm_72"}'],
            "must not be set with TargetDevice",
        ),
        (["--target-platform", "os=LINUX,arch=X86_64", "--component-version", "1.0"], "ComponentVersion"),
    ],
)
def test_user_errors_exit_1_with_the_message(
    blob_model: Path,
    tmp_path: Path,
    db: list[str],
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    message: str,
) -> None:
    code = main(
        ["package", str(blob_model), "--component-name", "Z", "--output", str(tmp_path / "o"), *extra, *db]
    )
    assert code == 1
    assert message in capsys.readouterr().err


def test_describe_unknown_job_and_bad_word_counts(db: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["package", "describe", "nope", *db]) == 1
    assert "no packaging job named 'nope'" in capsys.readouterr().err
    assert main(["package", "describe", *db]) == 1
    assert main(["package", "a", "b", *db]) == 1


def test_configuration_from_a_json_file(
    blob_model: Path, tmp_path: Path, db: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.json"
    config.write_text(
        json.dumps(
            {
                "Greengrass": {
                    "TargetDevice": "jetson_xavier",
                    "ComponentName": "J",
                    "S3OutputLocation": {"Bucket": "b", "Prefix": "p"},
                }
            }
        )
    )
    out = str(tmp_path / "o")
    # --output given too: it must agree with S3OutputLocation, so this is refused...
    assert (
        main(["package", str(blob_model), "--configuration", f"file://{config}", "--output", out, *db]) == 1
    )
    assert "differ" in capsys.readouterr().err
    config.write_text(json.dumps({"Greengrass": {"TargetDevice": "jetson_xavier", "ComponentName": "J"}}))
    assert (
        main(["package", str(blob_model), "--configuration", f"file://{config}", "--output", out, *db]) == 0
    )
    described = json.loads(capsys.readouterr().out)
    assert described["ModelPackagingOutputDetails"]["Greengrass"]["Target"] == "jetson_xavier"
    assert main(["package", "list", "--max-results", "1", *db]) == 0
    assert "J 1.0.0" in capsys.readouterr().out
