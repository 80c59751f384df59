"""report.html: the evaluation as a person wants to see it.

Charts are inline SVG (no plotting library); each test image is a PNG thumbnail beside the
report (`report-images/`), showing the true mask and the predicted mask blended over the image
with `edge_agent.imaging.overlay`. The page needs no network and no script.
"""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
from PIL import Image

from edge_agent.evaluation.metrics import roc_curve
from edge_agent.evaluation.summary import EvaluationSummary, ImageResult
from edge_agent.imaging.overlay import overlay

REPORT_NAME = "report.html"
IMAGE_DIR = "report-images"
THUMB_HEIGHT_PX = 192
GAP_PX = 4
NORMAL_COLOR, ANOMALY_COLOR, THRESHOLD_COLOR = "#4A90E2", "#E8743B", "#C0392B"


def write_thumbnail(
    image: np.ndarray,
    truth_mask: np.ndarray | None,
    predicted_mask: np.ndarray | None,
    output_dir: Path,
    stem: str,
) -> Path:
    """One PNG: [true mask overlay | predicted mask overlay] for segmentation, the image otherwise.

    Image and masks are shrunk first (masks with nearest neighbour, so colours stay label colours)
    and blended small: full-size blending cost more than the model on 576x768 images.
    """
    height, width = image.shape[:2]
    size = (max(1, round(width * THUMB_HEIGHT_PX / height)), THUMB_HEIGHT_PX)
    small = np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BILINEAR))

    def shrink(mask: np.ndarray) -> np.ndarray:
        return np.asarray(Image.fromarray(np.ascontiguousarray(mask)).resize(size, Image.Resampling.NEAREST))

    panels = [small]
    if predicted_mask is not None:
        panels = [
            overlay(small, shrink(truth_mask)) if truth_mask is not None else small,
            overlay(small, shrink(np.asarray(predicted_mask))),
        ]
    sheet = Image.new("RGB", (len(panels) * size[0] + (len(panels) - 1) * GAP_PX, size[1]), "white")
    for i, panel in enumerate(panels):
        sheet.paste(Image.fromarray(panel), (i * (size[0] + GAP_PX), 0))
    path = output_dir / IMAGE_DIR / f"{stem}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return path


def _fmt(value: float | None, percent: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{value * 100:.1f}%" if percent else f"{value:.4f}"


def roc_svg(summary: EvaluationSummary, size: int = 320, pad: int = 40) -> str:
    truth = np.array([r.sample.is_anomalous for r in summary.images], dtype=bool)
    scores = np.array([r.detection.anomaly_score for r in summary.images], dtype=np.float64)
    fpr, tpr, _ = roc_curve(truth, scores)
    total = size + 2 * pad

    def xy(x: float, y: float) -> str:
        return f"{pad + x * size:.1f},{pad + (1 - y) * size:.1f}"

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{total}" height="{total}" role="img" '
        f'aria-label="ROC curve">',
        f'<rect x="{pad}" y="{pad}" width="{size}" height="{size}" fill="#fafafa" stroke="#888"/>',
        f'<line x1="{pad}" y1="{pad + size}" x2="{pad + size}" y2="{pad}" stroke="#bbb" stroke-dasharray="4 4"/>',
    ]
    for tick in (0.0, 0.5, 1.0):
        parts.append(
            f'<text x="{pad + tick * size:.0f}" y="{pad + size + 16}" font-size="11" '
            f'text-anchor="middle">{tick:g}</text>'
        )
        parts.append(
            f'<text x="{pad - 6}" y="{pad + (1 - tick) * size + 4:.0f}" font-size="11" '
            f'text-anchor="end">{tick:g}</text>'
        )
    parts.append(
        f'<text x="{pad + size / 2}" y="{total - 4}" font-size="12" text-anchor="middle">'
        "false positive rate</text>"
    )
    parts.append(
        f'<text x="12" y="{pad + size / 2}" font-size="12" text-anchor="middle" '
        f'transform="rotate(-90 12 {pad + size / 2})">true positive rate</text>'
    )
    if fpr.size:
        points = " ".join(xy(x, y) for x, y in zip(fpr, tpr, strict=True))
        parts.append(f'<polyline points="{points}" fill="none" stroke="{ANOMALY_COLOR}" stroke-width="2"/>')
        c = summary.metrics.confusion
        if c.fp + c.tn and c.tp + c.fn:
            x, y = xy(c.fp / (c.fp + c.tn), c.tp / (c.tp + c.fn)).split(",")
            parts.append(
                f'<circle cx="{x}" cy="{y}" r="5" fill="{THRESHOLD_COLOR}"><title>threshold</title></circle>'
            )
    else:
        parts.append(
            f'<text x="{pad + size / 2}" y="{pad + size / 2}" text-anchor="middle" font-size="13">'
            "needs normal and anomalous images</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def histogram_svg(summary: EvaluationSummary, bins: int = 20, width: int = 520, height: int = 240) -> str:
    pad_l, pad_b, pad_t = 40, 36, 16
    plot_w, plot_h = width - pad_l - 10, height - pad_b - pad_t
    edges = np.linspace(0.0, 1.0, bins + 1)
    series = []
    for anomalous, color in ((False, NORMAL_COLOR), (True, ANOMALY_COLOR)):
        scores = [r.detection.anomaly_score for r in summary.images if r.sample.is_anomalous == anomalous]
        series.append((np.histogram(np.clip(scores, 0, 1), bins=edges)[0], color))
    top = max(1, *(int(counts.max(initial=0)) for counts, _ in series))
    bar_w = plot_w / bins / 2
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
        'aria-label="score histogram">',
        f'<line x1="{pad_l}" y1="{pad_t + plot_h}" x2="{pad_l + plot_w}" y2="{pad_t + plot_h}" stroke="#888"/>',
    ]
    for offset, (counts, color) in enumerate(series):
        for i, count in enumerate(counts):
            if not count:
                continue
            h = plot_h * count / top
            x = pad_l + i * plot_w / bins + offset * bar_w
            parts.append(
                f'<rect x="{x:.1f}" y="{pad_t + plot_h - h:.1f}" width="{bar_w - 1:.1f}" height="{h:.1f}" '
                f'fill="{color}"><title>{int(count)} image(s) in {edges[i]:.2f}..{edges[i + 1]:.2f}</title></rect>'
            )
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        parts.append(
            f'<text x="{pad_l + tick * plot_w:.0f}" y="{pad_t + plot_h + 14}" font-size="11" '
            f'text-anchor="middle">{tick:g}</text>'
        )
    parts.append(f'<text x="{pad_l - 6}" y="{pad_t + 8}" font-size="11" text-anchor="end">{top}</text>')
    x = pad_l + summary.threshold * plot_w
    parts.append(
        f'<line x1="{x:.1f}" y1="{pad_t - 4}" x2="{x:.1f}" y2="{pad_t + plot_h}" stroke="{THRESHOLD_COLOR}" '
        f'stroke-width="2" stroke-dasharray="5 3"/>'
        f'<text x="{x + 4:.1f}" y="{pad_t + 6}" font-size="11" fill="{THRESHOLD_COLOR}">'
        f"threshold {summary.threshold:.3f}</text>"
    )
    parts.append(
        f'<text x="{pad_l + plot_w / 2}" y="{height - 4}" font-size="12" text-anchor="middle">anomaly score</text>'
    )
    parts.append("</svg>")
    return "".join(parts)


def _card(result: ImageResult, output_dir: Path) -> str:
    d, s = result.detection, result.sample
    truth = "anomaly" if s.is_anomalous else "normal"
    predicted = "anomaly" if d.is_anomalous else "normal"
    badge = '<span class="ok">correct</span>' if result.correct else '<span class="bad">incorrect</span>'
    picture = ""
    if result.thumbnail is not None:
        src = html.escape(result.thumbnail.relative_to(output_dir).as_posix())
        picture = f'<img src="{src}" alt="{html.escape(s.image.name)}" loading="lazy">'
    details = [
        f"score <b>{d.anomaly_score:.4f}</b> (threshold {d.anomaly_threshold:.4f}), confidence {d.confidence:.3f}",
        f"truth <b>{truth}</b>, predicted <b>{predicted}</b> {badge}",
    ]
    if s.labels or result.predicted_labels:
        details.append(
            f"true labels: {html.escape(', '.join(s.labels) or '-')}; "
            f"predicted: {html.escape(', '.join(result.predicted_labels) or '-')}"
        )
    if result.label_iou:
        details.append(
            "IoU " + ", ".join(f"{html.escape(k)} {v:.3f}" for k, v in sorted(result.label_iou.items()))
        )
    return (
        f'<div class="card{"" if result.correct else " wrong"}">{picture}'
        f'<div class="ref">{html.escape(s.source_ref or str(s.image))}</div>'
        + "".join(f"<div>{line}</div>" for line in details)
        + "</div>"
    )


def write_report(summary: EvaluationSummary, output_dir: Path) -> Path:
    m, c = summary.metrics, summary.metrics.confusion
    rows = [
        ("Precision", _fmt(m.precision, True)),
        ("Recall", _fmt(m.recall, True)),
        ("F1 score", _fmt(m.f1, True)),
        ("ROC AUC", _fmt(m.roc_auc)),
        ("Average precision", _fmt(m.average_precision)),
    ]
    metric_rows = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)
    label_table = ""
    if summary.labels:
        body = "".join(
            f'<tr><td><span class="swatch" style="background:{html.escape(lab.hex_color)}"></span>'
            f"{html.escape(lab.name)}</td><td>{lab.test_images}</td><td>{_fmt(lab.precision, True)}</td>"
            f"<td>{_fmt(lab.recall, True)}</td><td>{_fmt(lab.f1, True)}</td><td>{_fmt(lab.aiou, True)}</td></tr>"
            for lab in summary.labels
        )
        label_table = (
            "<h2>Per anomaly label (pixels)</h2><table><tr><th>label</th><th>test images</th><th>precision</th>"
            f"<th>recall</th><th>F1</th><th>average IoU</th></tr>{body}</table>"
        )
    skipped = ""
    if summary.skipped:
        items = "".join(f"<li>{html.escape(ref)}: {html.escape(why)}</li>" for ref, why in summary.skipped)
        skipped = f"<h2>Skipped images</h2><ul>{items}</ul>"
    ordered = sorted(summary.images, key=lambda r: (r.correct, -r.detection.anomaly_score))
    cards = "".join(_card(r, output_dir) for r in ordered)
    kind = "training" if summary.out_of_fold else "test"
    if summary.out_of_fold:
        legend = "training images with their out-of-fold scores (no predicted masks)"
    elif summary.model_type == "segmentation":
        legend = "left: true mask, right: predicted mask, blended over the image"
    else:
        legend = "test images"
    notes = "".join(f"<p>{html.escape(note)}</p>" for note in summary.basis_notes())
    basis_class = "basis oof" if summary.out_of_fold else "basis"
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Evaluation of {html.escape(summary.model_arn)}</title>
<style>
body{{font-family:system-ui,sans-serif;margin:24px;color:#222}} table{{border-collapse:collapse;margin:8px 0}}
th,td{{border:1px solid #ddd;padding:4px 10px;text-align:left}} .charts{{display:flex;gap:32px;flex-wrap:wrap}}
.grid{{display:flex;flex-wrap:wrap;gap:12px}} .card{{border:1px solid #ddd;padding:6px;font-size:13px;max-width:420px}}
.card.wrong{{border-color:#C0392B;background:#fff6f5}} .card img{{display:block;max-width:100%}}
.ref{{font-family:monospace;font-size:11px;word-break:break-all;color:#555}} .ok{{color:#2E7D32}} .bad{{color:#C0392B}}
.swatch{{display:inline-block;width:12px;height:12px;margin-right:6px;border:1px solid #999}}
.legend span{{display:inline-block;width:12px;height:12px;margin:0 4px 0 12px}}
.basis{{border-left:4px solid #4A90E2;padding:2px 12px;margin:8px 0}} .basis.oof{{border-color:#E8743B;background:#fff8f0}}
</style></head><body>
<h1>Evaluation report</h1>
<div class="{basis_class}" id="evaluation-basis" data-basis="{summary.evaluation_basis}">{notes}</div>
<p>Model <code>{html.escape(summary.model_arn)}</code> ({summary.model_type}), threshold {summary.threshold:.4f}.<br>
Dataset <code>{html.escape(summary.dataset_source)}</code>: {len(summary.images)} {kind} images used,
{len(summary.skipped)} skipped. Finished {html.escape(summary.end_timestamp)} UTC.</p>
<h2>Image level</h2>
<div class="charts"><div><table>{metric_rows}</table>
<table><tr><th></th><th>predicted anomaly</th><th>predicted normal</th></tr>
<tr><th>anomalous</th><td>TP {c.tp}</td><td>FN {c.fn}</td></tr>
<tr><th>normal</th><td>FP {c.fp}</td><td>TN {c.tn}</td></tr></table></div>
<div><h3>ROC curve</h3>{roc_svg(summary)}<div>dot: the model's threshold</div></div>
<div><h3>Scores</h3>{histogram_svg(summary)}
<div class="legend"><span style="background:{NORMAL_COLOR}"></span>normal
<span style="background:{ANOMALY_COLOR}"></span>anomalous</div></div></div>
{label_table}{skipped}
<h2>{kind.capitalize()} images</h2><p>{legend}; incorrect ones first.</p>
<div class="grid">{cards}</div>
</body></html>
"""
    path = output_dir / REPORT_NAME
    path.write_text(page, encoding="utf-8")
    return path
