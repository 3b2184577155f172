"""A self-contained ``index.html`` per run: metrics tables, the PNG figures, interactive plots.

The page must open offline (on a laptop after ``aws s3 sync``, on a cluster with no internet),
so plotly.js is inlined once in the page head instead of fetched from a CDN; the interactive
figures then only carry their data. PNG figures are referenced by relative path (``plots/...``)
so the page works wherever the run folder is copied. Without plotly installed the page is still
complete, with a note instead of the interactive section.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from mmdeepfake import metrics as M

_STYLE = """
body { font-family: system-ui, -apple-system, Segoe UI, sans-serif; margin: 2rem auto;
       max-width: 1250px; padding: 0 1rem; color: #1d1d1f; }
h1 { margin-bottom: 0.2rem; } .meta { color: #555; margin-top: 0; }
table { border-collapse: collapse; margin: 0.5rem 0 1.5rem; font-size: 0.95rem; }
th, td { border: 1px solid #ccc; padding: 0.3rem 0.7rem; text-align: left; }
th { background: #f2f2f2; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1rem 0 2rem; } figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { color: #555; font-size: 0.9rem; }
.note { background: #fff7e0; border-left: 4px solid #e0a800; padding: 0.5rem 1rem; }
"""


def format_value(value: Any) -> str:
    """Numbers to 4 significant decimals, NaN/None as an em dash, the rest as text."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def _cell(value: Any) -> str:
    """A table cell; numbers are right-aligned so their digits line up."""
    numeric = isinstance(value, (int, float, np.number)) and not isinstance(value, bool)
    css = " class='num'" if numeric else ""
    return f"<td{css}>{html.escape(format_value(value))}</td>"


def html_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None) -> str:
    """An HTML table from dict rows (columns default to the keys of the first row)."""
    if not rows:
        return "<p>(no rows)</p>"
    cols = list(columns or rows[0].keys())
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in cols)
    body = "".join("<tr>" + "".join(_cell(row.get(c)) for c in cols) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def interactive_figures(
    y_true: ArrayLike, scores: ArrayLike, extra: Mapping[str, ArrayLike] | None = None
) -> list[str]:
    """HTML fragments (no plotly.js) for the interactive ROC, PR and score-distribution plots.

    Raises ImportError when plotly is not installed; :func:`build_report` handles that.
    """
    import plotly.graph_objects as go

    y = np.asarray(y_true).astype(int).reshape(-1)
    curves = {
        "detector": np.asarray(scores, float),
        **{k: np.asarray(v, float) for k, v in (extra or {}).items()},
    }
    layout = {"width": 820, "height": 520, "template": "plotly_white"}

    roc = go.Figure(layout={**layout, "title": "ROC curve (hover for thresholds)"})
    pr = go.Figure(layout={**layout, "title": "Precision-recall curve (hover for thresholds)"})
    for name, s in curves.items():
        fpr, tpr, thr = M.roc_curve(y, s)
        roc.add_scatter(
            x=fpr,
            y=tpr,
            mode="lines",
            name=f"{name} (AUC={M.roc_auc(y, s):.3f})",
            text=[f"threshold {t:.4f}" for t in thr],
            line_shape="hv",
        )
        precision, recall, pthr = M.precision_recall_curve(y, s)
        pr.add_scatter(
            x=recall,
            y=precision,
            mode="lines+markers",
            marker_size=4,
            name=f"{name} (AP={M.average_precision(y, s):.3f})",
            text=[f"threshold {t:.4f}" for t in pthr],
        )
    roc.add_scatter(
        x=[0, 1], y=[0, 1], mode="lines", name="chance", line={"dash": "dash", "color": "grey"}
    )
    roc.update_xaxes(title="false positive rate (real called fake)", range=[0, 1])
    roc.update_yaxes(title="true positive rate (fake caught)", range=[0, 1.02])
    pr.update_xaxes(title="recall (fakes caught)", range=[0, 1])
    pr.update_yaxes(title="precision", range=[0, 1.02])

    dist = go.Figure(
        layout={
            **layout,
            "title": "Distribution of predicted fake probability",
            "barmode": "overlay",
        }
    )
    s_main = curves["detector"]
    for value, name, color in ((0, "real", "#1f77b4"), (1, "fake", "#d62728")):
        dist.add_histogram(
            x=s_main[y == value],
            name=name,
            opacity=0.6,
            marker_color=color,
            xbins={"start": 0, "end": 1, "size": 1 / 30},
        )
    dist.update_xaxes(title="predicted fake probability", range=[0, 1])
    dist.update_yaxes(title="samples")
    return [f.to_html(full_html=False, include_plotlyjs=False) for f in (roc, pr, dist)]


def build_report(
    title: str,
    *,
    summary: Mapping[str, Any] | None = None,
    tables: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
    figures: Sequence[str] = (),
    curves: tuple[ArrayLike, ArrayLike, Mapping[str, ArrayLike] | None] | None = None,
    notes: Sequence[str] = (),
) -> str:
    """The HTML page of one run.

    ``summary``: run facts shown under the title (model, split, ...). ``tables``: heading ->
    rows. ``figures``: relative PNG paths, shown in order with their file name as caption.
    ``curves``: ``(y_true, scores, extra)`` for the interactive plots; omitted, the page has
    none. ``notes``: warnings to show at the top (single-class splits, skipped samples).
    """
    parts = [f"<h1>{html.escape(title)}</h1>"]
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    facts = [f"generated {stamp}"] + [f"{k}: {v}" for k, v in (summary or {}).items()]
    parts.append(f"<p class='meta'>{html.escape(' · '.join(facts))}</p>")
    for note in notes:
        parts.append(f"<p class='note'>{html.escape(note)}</p>")
    for heading, rows in (tables or {}).items():
        parts.append(f"<h2>{html.escape(heading)}</h2>{html_table(rows)}")

    head_script = ""
    if curves is not None:
        parts.append("<h2>Interactive plots</h2>")
        try:
            from plotly.offline import get_plotlyjs

            fragments = interactive_figures(*curves)
            head_script = f"<script type='text/javascript'>{get_plotlyjs()}</script>"
            parts.extend(fragments)
        except ImportError:
            parts.append(
                "<p class='note'>Install plotly (pip install plotly) for interactive plots.</p>"
            )

    if figures:
        parts.append("<h2>Figures</h2>")
    for path in figures:
        name = html.escape(path)
        caption = html.escape(path.rsplit("/", 1)[-1].rsplit(".", 1)[0].replace("_", " "))
        parts.append(
            f"<figure><img src='{name}' alt='{caption}' loading='lazy'>"
            f"<figcaption>{caption}</figcaption></figure>"
        )
    body = "\n".join(parts)
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style>{head_script}</head>"
        f"<body>\n{body}\n</body></html>\n"
    )
