"""A self-contained HTML page of detection results: what a person looks at after `edge-agent detect`."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any


def write_gallery(out_dir: Path, records: list[dict[str, Any]], title: str) -> Path:
    """One card per image: its overlay (linked PNG beside the page), verdict, score and anomalies."""
    cards = []
    ordered = sorted(records, key=lambda r: (not r.get("is_anomalous", False), -r.get("anomaly_score", 0.0)))
    for record in ordered:
        if "error" in record:
            body = f"<p class='error'>{html.escape(record['error'])}</p>"
            picture = ""
        else:
            verdict = "ANOMALOUS" if record["is_anomalous"] else "normal"
            items = "".join(
                f"<li><span class='chip' style='background:{html.escape(a['hex_color'])}'></span>"
                f"{html.escape(a['name'])}: {a['total_percentage_area']:.2%}</li>"
                for a in record.get("anomalies", [])[1:]
            )
            body = (
                f"<p class='{verdict.lower()}'>{verdict} · score {record['anomaly_score']:.3f} "
                f"(threshold {record['anomaly_threshold']:.3f}) · confidence {record['confidence']:.2f}</p>"
                f"<ul>{items}</ul>"
            )
            overlay = record.get("overlay")
            picture = f"<img src='{html.escape(Path(overlay).name)}' loading='lazy'>" if overlay else ""
        cards.append(f"<div class='card'>{picture}<h3>{html.escape(record['image'])}</h3>{body}</div>")
    anomalous = sum(1 for r in records if r.get("is_anomalous"))
    page = f"""<!doctype html><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:1.5em}} .grid{{display:flex;flex-wrap:wrap;gap:1em}}
.card{{width:320px;border:1px solid #ccc;padding:.5em}} .card img{{width:100%}} h3{{font-size:.8em;word-break:break-all}}
.anomalous{{color:#b00;font-weight:bold}} .normal{{color:#060}} .error{{color:#b00}}
.chip{{display:inline-block;width:.8em;height:.8em;margin-right:.4em;border:1px solid #444}}</style>
<h1>{html.escape(title)}</h1><p>{len(records)} images, {anomalous} anomalous. Anomalous first, highest score first.</p>
<div class="grid">{"".join(cards)}</div>
<script type="application/json" id="results">{html.escape(json.dumps(records))}</script>
"""
    path = out_dir / "report.html"
    path.write_text(page, encoding="utf-8")
    return path
