"""``edge-wbc count --report report.html``: one self-contained page a lab can read on a phone.

Everything is inline: the annotated fields as base64 JPEGs, the differential as an inline SVG bar chart,
the CSS. No script, no font, no request to anywhere. The figures are those of the count JSON
(``summarize``), each in an element with a ``data-*`` attribute so that a check can compare the rendered
page with the JSON (scripts/report_check.sh does, in headless Chromium).

Bounded: up to ``REPORT_FULL_FIELDS`` fields the images are shown at up to ``REPORT_FULL_PX`` px, beyond
that as ``REPORT_THUMB_PX`` px thumbnails; over ``REPORT_MAX_FIELDS`` fields the report is refused (the
JSON/CSV still hold every field).
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
from datetime import UTC, datetime
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from ..defaults import REPORT_FULL_FIELDS, REPORT_FULL_PX, REPORT_MAX_FIELDS, REPORT_THUMB_PX
from ..errors import DataError

UNCERTAIN = "uncertain"
COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22")


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def draw_cells(img: Image.Image, cells: list[dict], numbered: bool = False) -> Image.Image:
    """A copy of ``img`` with each cell's box and label (and its number in the report's table)."""
    img = img.convert("RGB").copy()
    d = ImageDraw.Draw(img)
    w = max(2, round(max(img.size) / 200))
    size = max(12, round(max(img.size) / 32))
    try:
        font = ImageFont.load_default(size=size)  # Pillow >= 10.1: a scalable default font
    except TypeError:
        font, size = ImageFont.load_default(), 11
    for i, c in enumerate(cells, 1):
        col = (255, 160, 0) if c["label"] == UNCERTAIN else (0, 200, 255)
        d.rectangle(c["box"], outline=col, width=w)
        tag = f"#{i} " if numbered else ""
        xy = (c["box"][0] + 2, max(0, c["box"][1] - size - 4))
        d.text(xy, f"{tag}{c['label']} {c['confidence']:.2f}", fill=col, font=font, stroke_width=2,
               stroke_fill=(0, 0, 0))
    return img


class FieldImages:
    """JPEG bytes of the annotated fields, kept small: full size up to REPORT_FULL_FIELDS fields, then
    every one (earlier ones included) as a thumbnail; nothing is kept past REPORT_MAX_FIELDS."""

    def __init__(self):
        self.images: list[bytes | None] = []
        self.thumbs = False

    @staticmethod
    def _jpeg(img: Image.Image, px: int) -> bytes:
        img = img.copy()
        img.thumbnail((px, px))
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=80 if px > REPORT_THUMB_PX else 70)
        return buf.getvalue()

    def add(self, img: Image.Image | None) -> None:
        if len(self.images) >= REPORT_MAX_FIELDS or img is None:
            self.images.append(None)
            return
        if not self.thumbs and len(self.images) >= REPORT_FULL_FIELDS:
            self.thumbs = True
            self.images = [self._jpeg(Image.open(io.BytesIO(b)), REPORT_THUMB_PX) if b else None for b in self.images]
        self.images.append(self._jpeg(img, REPORT_THUMB_PX if self.thumbs else REPORT_FULL_PX))


def _bar_chart(totals: dict, percent: dict, labels: list[str]) -> str:
    """Inline SVG: one bar per class (count, % of all cells as in the JSON); uncertain as its own bar, apart."""
    rows = [*labels, UNCERTAIN]
    bar_h, gap, left, width = 22, 6, 96, 230
    top = max([totals.get(k, 0) for k in rows] + [1])
    h = len(rows) * (bar_h + gap) + 14
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {left + width + 94} {h}" '
             f'role="img" aria-label="differential" class="chart">']
    for i, k in enumerate(rows):
        y = i * (bar_h + gap) + (14 if k == UNCERTAIN else 0)
        n = totals.get(k, 0)
        bw = width * n / top
        col = "#f0a000" if k == UNCERTAIN else COLORS[i % len(COLORS)]
        parts.append(f'<text x="{left - 6}" y="{y + 16}" text-anchor="end" font-size="14">{html.escape(k)}</text>'
                     f'<rect x="{left}" y="{y}" width="{bw:.1f}" height="{bar_h}" fill="{col}"/>'
                     f'<text x="{left + bw + 4:.1f}" y="{y + 16}" font-size="14">'
                     f"{n} ({percent.get(k, 0.0):.1f}%)</text>")
    parts.append("</svg>")
    return "".join(parts)


CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;padding:12px;max-width:960px;
margin-inline:auto;color:#222;background:#fff;line-height:1.35}
h1{font-size:1.3em;margin:.2em 0}h2{font-size:1.1em;margin:1em 0 .4em}
h3{font-size:1em;margin:.2em 0;word-break:break-all}
table{border-collapse:collapse;width:100%;font-size:.9em}
td,th{border-bottom:1px solid #ddd;padding:3px 5px;text-align:left}
.num{text-align:right;font-variant-numeric:tabular-nums}.chart{width:100%;height:auto;max-width:560px}
.field{border:1px solid #ccc;border-radius:6px;padding:8px;margin:10px 0}
.field img{width:100%;height:auto;display:block}
.meta{font-size:.8em;color:#555;word-break:break-all}.unc{color:#b36b00;font-weight:600}.err{color:#b00020}
.thumbs .field{display:inline-block;width:calc(50% - 22px);vertical-align:top;margin:4px}
"""


def render_html(report: dict, images: FieldImages, labels: list[str], models: dict[str, str], version: str,
                settings: dict | None = None) -> str:
    """The page (a string). ``models``: role -> model path (their sha256 are computed here), or the name of a
    detector that has no model file (shown as it is)."""
    n_fields = len(report["images"])
    if n_fields > REPORT_MAX_FIELDS:
        raise DataError(f"--report: {n_fields} fields is over the report's limit of {REPORT_MAX_FIELDS} fields; "
                        "split the input into smaller runs (the --json/--csv outputs hold every field)")
    e = html.escape
    totals, percent = report["totals"], report["percent"]
    n_cells = sum(totals.values())
    n_unc = totals.get(UNCERTAIN, 0)
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           "<title>edge-wbc count report</title>", f"<style>{CSS}</style></head><body>",
           "<h1>WBC differential</h1>",
           f'<p class="meta">edge-wbc <span data-k="version">{e(version)}</span>; '
           f"made {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}</p>",
           '<table class="summary"><tbody>',
           f'<tr><th>fields</th><td class="num" data-k="fields">{n_fields}</td></tr>',
           f'<tr><th>WBCs found</th><td class="num" data-k="cells">{n_cells}</td></tr>',
           f'<tr><th>classified</th><td class="num" data-k="classified">{n_cells - n_unc}</td></tr>',
           f'<tr><th class="unc">uncertain (in no class)</th><td class="num unc" data-k="uncertain">{n_unc}</td></tr>']
    if report.get("um_per_px") is not None:
        out.append(f'<tr><th>µm per pixel</th><td class="num" data-k="um_per_px">{report["um_per_px"]}</td></tr>')
    out.append("</tbody></table>")
    out.append("<h2>Differential</h2>" + _bar_chart(totals, percent, labels))
    out.append('<table class="totals"><thead><tr><th>class</th><th class="num">cells</th><th class="num">% of all'
               "</th></tr></thead><tbody>")
    for k in [*labels, UNCERTAIN]:
        cls = ' class="unc"' if k == UNCERTAIN else ""
        out.append(f'<tr{cls}><td>{e(k)}</td><td class="num" data-total="{e(k)}">{totals.get(k, 0)}</td>'
                   f'<td class="num" data-percent="{e(k)}">{percent.get(k, 0.0):.1f}</td></tr>')
    out.append("</tbody></table>")
    out.append('<h2>Models</h2><table class="models"><tbody>')
    for role, path in models.items():
        if not Path(path).is_file():  # a detector that is not a model file (count --detector nuclei): its name
            out.append(f'<tr><th>{e(role)}</th><td data-model="{e(role)}">{e(str(path))}</td></tr>')
            continue
        out.append(f"<tr><th>{e(role)}</th><td>{e(Path(path).name)}<br><span class=\"meta\" data-sha256=\"{e(role)}\">"
                   f"sha256 {sha256_file(path)}</span></td></tr>")
    for k, v in (settings or {}).items():
        out.append(f"<tr><th>{e(k)}</th><td>{e(str(v))}</td></tr>")
    out.append("</tbody></table>")
    out.append(f'<h2>Fields</h2><div class="{"thumbs" if images.thumbs else "full"}">')
    for i, r in enumerate(report["images"]):
        cells = r.get("cells", [])
        um = r.get("um_per_px")
        out.append(f'<section class="field" data-field="{i}" data-cells="{len(cells)}">'
                   f"<h3>{i + 1}. {e(Path(r['file']).name)}</h3>"
                   f'<p class="meta">{r.get("width", "?")}x{r.get("height", "?")} px; µm per pixel: '
                   f'<span data-um="{i}">{um if um is not None else "not estimated"}</span></p>')
        if r.get("error"):
            out.append(f'<p class="err">could not be read: {e(r["error"])}</p></section>')
            continue
        img = images.images[i] if i < len(images.images) else None
        if img:
            out.append(f'<img alt="annotated field {i + 1}" src="data:image/jpeg;base64,'
                       f'{base64.b64encode(img).decode("ascii")}">')
        if cells:
            out.append('<table><thead><tr><th>#</th><th>label</th><th class="num">conf.</th><th>flags</th></tr>'
                       "</thead><tbody>")
            for j, c in enumerate(cells, 1):
                flags = list(c.get("flags") or [])
                if c["label"] == UNCERTAIN:
                    flags.insert(0, f"uncertain (top: {c.get('class', '?')})")
                cls = ' class="unc"' if c["label"] == UNCERTAIN else ""
                out.append(f'<tr{cls}><td>{j}</td><td data-label="{i}">{e(c["label"])}</td>'
                           f'<td class="num">{c["confidence"]:.2f}</td><td>{e(", ".join(map(str, flags)))}</td></tr>')
            out.append("</tbody></table>")
        else:
            out.append("<p>no WBC found</p>")
        out.append("</section>")
    out.append("</div></body></html>")
    return "\n".join(out) + "\n"
