"""The guide's CSV-to-classification-manifest conversion (section 2.4), step for step.

Input: a CSV without header, `image,class` per row; column 1 is either a bare image name or a
full s3:// path (not mixed), column 2 `normal` or `anomaly` in any case; blank rows are skipped;
`s3_path` is prepended to column 1. A validation pass writes duplicates and invalid classes to
`<csv stem>_errors.csv` as `line,image,class,DUPLICATE|INVALID_CLASSIFICATION` and first
occurrences to `<csv stem>_deduplicated.csv`, both beside the CSV; any error means no manifest.
Without errors both side files are deleted and the manifest is written.
"""

from __future__ import annotations

import csv
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from edge_agent.dataset.errors import DatasetError
from edge_agent.dataset.manifest import ANOMALY, CLASSIFICATION_TYPE, NORMAL

log = logging.getLogger(__name__)

DUPLICATE, INVALID_CLASSIFICATION = "DUPLICATE", "INVALID_CLASSIFICATION"
JOB_NAME = "labeling-job/anomaly-classification"


@dataclass(frozen=True)
class CsvRow:
    line: int
    image: str
    class_name: str


@dataclass(frozen=True)
class Conversion:
    manifest: Path
    total: int
    normal: int
    anomalous: int


class CsvConversionError(DatasetError):
    """The CSV has duplicates or invalid classes; `errors_path` lists them, no manifest was written."""

    def __init__(self, message: str, errors_path: Path, deduplicated_path: Path) -> None:
        super().__init__(message)
        self.errors_path = errors_path
        self.deduplicated_path = deduplicated_path


def side_files(csv_path: Path) -> tuple[Path, Path]:
    """(<stem>_errors.csv, <stem>_deduplicated.csv) beside the CSV."""
    return (
        csv_path.with_name(f"{csv_path.stem}_errors.csv"),
        csv_path.with_name(f"{csv_path.stem}_deduplicated.csv"),
    )


def read_rows(csv_path: Path) -> list[CsvRow]:
    try:
        with csv_path.open(newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.reader(handle))
    except FileNotFoundError:
        raise DatasetError(f"CSV file {csv_path} does not exist") from None
    result = []
    for number, row in enumerate(rows, start=1):
        if not row or not any(cell.strip() for cell in row):
            continue
        if len(row) < 2:
            raise DatasetError(
                f"{csv_path} line {number} has {len(row)} column(s): each row must be `image,normal|anomaly`"
            )
        result.append(CsvRow(number, row[0].strip(), row[1].strip()))
    return result


def convert_csv(csv_path: Path, output: Path | None = None, s3_path: str = "") -> Conversion:
    """Write `<csv stem>.manifest` (or `output`) from a CSV; raise CsvConversionError on bad rows."""
    csv_path = Path(csv_path)
    rows = read_rows(csv_path)
    if not rows:
        raise DatasetError(f"CSV file {csv_path} has no rows: write one `image,normal|anomaly` row per image")
    _check_styles(rows, csv_path, s3_path)
    errors_path, dedup_path = side_files(csv_path)
    seen: set[str] = set()
    errors: list[list[str]] = []
    first: list[CsvRow] = []
    for row in rows:
        if row.image in seen:
            errors.append([str(row.line), row.image, row.class_name, DUPLICATE])
            continue
        seen.add(row.image)
        first.append(row)
        if row.class_name.lower() not in (NORMAL, ANOMALY):
            errors.append([str(row.line), row.image, row.class_name, INVALID_CLASSIFICATION])
    _write_csv(errors_path, errors)
    _write_csv(dedup_path, [[row.image, row.class_name] for row in first])
    if errors:
        raise CsvConversionError(
            f"{csv_path} has {len(errors)} error(s) (duplicates or classes other than normal/anomaly), "
            f"listed in {errors_path}; no manifest was written. Fix the CSV (first occurrences are in "
            f"{dedup_path}) and convert again",
            errors_path,
            dedup_path,
        )
    errors_path.unlink()
    dedup_path.unlink()
    if s3_path and not s3_path.endswith("/"):
        s3_path += "/"
    manifest = output or csv_path.with_suffix(".manifest")
    anomalous = 0
    with manifest.open("w", encoding="utf-8") as handle:
        for row in rows:
            is_anomaly = row.class_name.lower() == ANOMALY
            anomalous += is_anomaly
            handle.write(json.dumps(manifest_line(s3_path + row.image, row.class_name, is_anomaly)) + "\n")
    log.info("op=convert_csv csv=%s manifest=%s total=%d", csv_path, manifest, len(rows))
    return Conversion(manifest, len(rows), len(rows) - anomalous, anomalous)


def manifest_line(source_ref: str, class_name: str, is_anomaly: bool) -> dict[str, object]:
    """One classification line exactly as the guide's script writes it (label as a string)."""
    return {
        "source-ref": source_ref,
        "anomaly-label": "1" if is_anomaly else "0",
        "anomaly-label-metadata": {
            "confidence": 1,
            "job-name": JOB_NAME,
            "class-name": class_name,
            "human-annotated": "yes",
            "creation-date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f"),
            "type": CLASSIFICATION_TYPE,
        },
    }


def _check_styles(rows: list[CsvRow], csv_path: Path, s3_path: str) -> None:
    s3_rows = [row for row in rows if row.image.startswith("s3://")]
    if s3_rows and len(s3_rows) != len(rows):
        bare = next(row for row in rows if not row.image.startswith("s3://"))
        raise DatasetError(
            f"{csv_path} mixes full s3:// paths (line {s3_rows[0].line}) with bare image names "
            f"(line {bare.line}): use one style in every row"
        )
    if s3_rows and s3_path:
        raise DatasetError(
            f"{csv_path} already holds full s3:// paths (line {s3_rows[0].line}): drop --s3-path, "
            "or write bare image names in the CSV"
        )


def _write_csv(path: Path, rows: list[list[str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(rows)
