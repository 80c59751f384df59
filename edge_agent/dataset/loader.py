"""`load_dataset`: a manifest file, an s3:// manifest or a folder to a checked `Dataset`.

The loader opens every image header and every anomalous image's mask, because a sample's labels
are the colours actually painted in its mask. File-level rules (format, size, masks) are checked
here; role-dependent rules (minimum counts) are left to `validation.validate`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

from edge_agent.dataset.errors import DatasetError
from edge_agent.dataset.images import ImageInfo, inspect_image, mask_colors, read_mask, unlisted_colors
from edge_agent.dataset.manifest import ManifestEntry, read_manifest
from edge_agent.dataset.s3 import Resolver, parse_s3
from edge_agent.dataset.types import Dataset, Sample
from edge_agent.model_package import BACKGROUND_COLOR, AnomalyLabel

log = logging.getLogger(__name__)


def load_dataset(
    source: str | Path, image_root: Path | None = None, cache_dir: Path | None = None
) -> Dataset:
    """Import a Ground Truth manifest (local or s3://) or a `normal/` + `anomaly/` folder."""
    text = str(source)
    image_root = Path(image_root).expanduser() if image_root is not None else None
    if image_root is not None and not image_root.is_dir():
        raise DatasetError(f"--image-root {image_root} is not a folder")
    s3 = parse_s3(text)
    if s3 is not None:
        resolver = Resolver(Path("."), image_root, cache_dir)
        path = resolver.download(s3, f"manifest {s3}")
        return load_manifest(path, image_root, cache_dir, name=text)
    path = Path(text).expanduser()
    if path.is_dir():
        from edge_agent.dataset.folders import load_folder

        return load_folder(path)
    if not path.exists():
        raise DatasetError(f"dataset source {path} does not exist: give a manifest file or a folder")
    if path.suffix.lower() == ".csv":
        raise DatasetError(
            f"{path} is a CSV file: convert it first with `edge-agent dataset convert-csv {path}` "
            "and load the manifest it writes"
        )
    return load_manifest(path, image_root, cache_dir)


def load_manifest(
    path: Path, image_root: Path | None = None, cache_dir: Path | None = None, name: str = ""
) -> Dataset:
    entries = read_manifest(path)
    _check_one_bucket(entries, path)
    resolver = Resolver(path.parent, image_root, cache_dir)
    samples: list[Sample] = []
    colors: dict[str, str] = {}
    unlabelled = 0
    # One image, one sample: a later line for the same source-ref relabels it (as UpdateDatasetEntries
    # does), so a repeated line can neither count twice towards the minimums nor land in both splits.
    last_line = {entry.source_ref: entry.line for entry in entries if entry.is_labelled}
    for entry in entries:
        where = f"{path} line {entry.line}"
        if not entry.is_labelled:
            unlabelled += 1
            log.debug("op=import unlabelled line=%d class_name=%r", entry.line, entry.class_name)
            continue
        if last_line[entry.source_ref] != entry.line:
            log.warning(
                "op=import manifest=%s line=%d duplicate source-ref=%r: line %d replaces it",
                path,
                entry.line,
                entry.source_ref,
                last_line[entry.source_ref],
            )
            continue
        image = resolver.resolve(entry.source_ref, where)
        mask = None
        if entry.is_anomalous and entry.mask_ref is not None:
            mask = resolver.resolve(entry.mask_ref, where)
        elif not entry.is_anomalous and entry.anomaly_colors:
            raise DatasetError(
                f"{where}: image {entry.source_ref} is labelled normal but its internal-color-map lists "
                f"anomaly labels {[c.name for c in entry.anomaly_colors]}: label it anomaly, or give it "
                "an empty mask whose color map holds only BACKGROUND"
            )
        # A normal image's mask (often a shared dummy file) carries no information: it is not read.
        for color in entry.anomaly_colors:
            _add_label(colors, color.name, color.hex_color, where)
        samples.append(
            Sample(
                image=image,
                is_anomalous=entry.is_anomalous,
                mask=mask,
                labels=tuple(sorted(c.name for c in entry.anomaly_colors)) if mask else (),
                source_ref=entry.source_ref,
            )
        )
    if unlabelled:
        log.info("op=import manifest=%s unlabelled_skipped=%d", path, unlabelled)
    backgrounds = {e.hex_color for entry in entries for e in entry.color_map if e.is_background}
    return build_dataset(samples, colors, name or str(path), unlabelled, backgrounds)


def build_dataset(
    samples: Iterable[Sample],
    colors: dict[str, str],
    source: str,
    unlabelled: int = 0,
    background_colors: Iterable[str] = (),
) -> Dataset:
    """Open every image and mask, check sizes and mask colours, and freeze the result."""
    samples = list(samples)
    if not samples:
        raise DatasetError(
            f"dataset {source} has no labelled images ({unlabelled} unlabelled): "
            'label images with class-name "normal" or "anomaly"'
        )
    first: ImageInfo | None = None
    background = {BACKGROUND_COLOR, *background_colors}
    for sample in samples:
        info = inspect_image(sample.image)
        if first is None:
            first = info
        elif (info.width, info.height) != (first.width, first.height):
            raise DatasetError(
                f"image {info.path} is {info.width}x{info.height} but {first.path} is "
                f"{first.width}x{first.height}: every image of a dataset must have the same size"
            )
        if sample.mask is not None:
            check_mask(sample, info, colors, background)
    assert first is not None
    labels = tuple(AnomalyLabel(name, colors[name]) for name in sorted(colors))
    return Dataset(
        samples=tuple(samples),
        width=first.width,
        height=first.height,
        labels=labels,
        source=source,
        unlabelled=unlabelled,
    )


def check_mask(
    sample: Sample, info: ImageInfo, colors: dict[str, str], background: set[str] | None = None
) -> None:
    """A mask is a real PNG of its image's size painting every colour of its labels.

    With `background` (the colours that mean background), any other colour is an error too; the
    importer knows them from the color map, `validate` does not and skips that check.
    """
    assert sample.mask is not None
    mask = read_mask(sample.mask)
    if mask.shape[:2] != (info.height, info.width):
        raise DatasetError(
            f"mask {sample.mask} is {mask.shape[1]}x{mask.shape[0]} but its image {info.path} is "
            f"{info.width}x{info.height}: a mask must have its image's size"
        )
    present = mask_colors(mask)
    expected = {colors[name] for name in sample.labels}
    missing = sorted(expected - present)
    if missing:
        names = sorted(name for name in sample.labels if colors[name] in missing)
        raise DatasetError(
            f"mask {sample.mask} does not contain hex-color {', '.join(missing)} of label(s) {names} "
            f"(colours in the mask: {', '.join(sorted(present))}): correct the hex-color in the manifest "
            "or repaint the mask"
        )
    if background is None:
        return
    unknown, edges = unlisted_colors(mask, expected, background)
    painted = sorted(set(unknown) - set(edges))
    if painted:
        raise DatasetError(
            f"mask {sample.mask} contains colour(s) {', '.join(painted[:5])} that are not in its "
            f"internal-color-map (labels {dict((n, colors[n]) for n in sample.labels)}): add them to the "
            "color map or repaint those pixels black"
        )
    if edges:
        log.warning(
            "op=import mask=%s edge_colors=%d (anti-aliased label edges, read as background)",
            sample.mask,
            len(edges),
        )


def _add_label(colors: dict[str, str], name: str, hex_color: str, where: str) -> None:
    known = colors.get(name)
    if known is not None and known != hex_color:
        raise DatasetError(
            f"{where}: label {name!r} has colour {hex_color} here but {known} before: "
            "use one colour per label in every line"
        )
    for other, color in colors.items():
        if other != name and color == hex_color:
            raise DatasetError(
                f"{where}: labels {other!r} and {name!r} share colour {hex_color}: give each label its own colour"
            )
    colors[name] = hex_color


def _check_one_bucket(entries: list[ManifestEntry], path: Path) -> None:
    """The guide: every source-ref image is in one single bucket, masks in the same bucket."""
    buckets: dict[str, int] = {}
    for entry in entries:
        for ref in (entry.source_ref, entry.mask_ref):
            s3 = parse_s3(ref) if ref else None
            if s3 is not None:
                buckets.setdefault(s3.bucket, entry.line)
    if len(buckets) > 1:
        listing = ", ".join(f"{b} (first on line {n})" for b, n in buckets.items())
        raise DatasetError(
            f"manifest {path} references several buckets: {listing}: copy the images and masks into one bucket"
        )
