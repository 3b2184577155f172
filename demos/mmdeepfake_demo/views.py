"""Explanation views: turn a prediction dictionary into what the page shows.

Every function takes the dictionary of ``Prediction.to_dict()`` — the same object the API
endpoints return — so the page explains exactly what an API caller receives. Figures are plotly
(interactive in the page); the spectrogram is a still image drawn with matplotlib's object API
(no pyplot state, so concurrent requests cannot draw into each other's figures).
"""

from __future__ import annotations

import html
import itertools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from mmdeepfake.labels import EMOTIONS

if TYPE_CHECKING:
    from matplotlib.figure import Figure

FACE_COLOUR = "#1f77b4"
VOICE_COLOUR = "#ff7f0e"
FAKE_COLOUR = "#d62728"
CONSISTENCY_COLOUR = "#2ca02c"


NOUNS = {"image": "face", "audio": "voice"}


def verdict_label(pred: dict[str, Any]) -> dict[str, float]:
    """Confidences for ``gr.Label``: the verdict on top, with the fake probability beside it.

    An "uncertain" verdict is put on top (the label shows it), the probabilities below it."""
    p_fake = float(pred["fake_probability"])
    scores = {"fake": p_fake, "real": 1.0 - p_fake}
    if pred.get("label") == "uncertain":
        return {"uncertain": 1.0, **scores}
    return scores


def unfamiliar_banner(pred: dict[str, Any]) -> str:
    """The headline when a modality is unlike the model's training data, else ""."""
    unfamiliar = [
        NOUNS.get(m, m) for m, d in (pred.get("domain") or {}).items() if d.get("familiar") is False
    ]
    if not unfamiliar:
        return ""
    what = " and the ".join(unfamiliar)
    verb = "are" if len(unfamiliar) > 1 else "is"
    head = "uncertain" if pred.get("label") == "uncertain" else "warning"
    return f"## {head}: the {what} {verb} unlike anything this model was trained on\n"


def verdict_markdown(pred: dict[str, Any]) -> str:
    """What a person reads first: the unfamiliar-input banner, the verdict, the evidence
    (or which modality alone was used) and the model that answered."""
    label = str(pred["label"]).upper()
    lines = [
        unfamiliar_banner(pred) + f"### {label} — fake probability {pred['fake_probability']:.2f} "
        f"(threshold {pred['threshold']:.2f})"
    ]
    if pred.get("consistency") is not None:
        lines.append(
            f"The face looks **{pred['face_emotion']}**, the voice sounds "
            f"**{pred['voice_emotion']}**; emotional consistency **{pred['consistency']:.2f}** "
            f"(1 = they agree, 0 = they contradict each other). Fusion: `{pred['fusion']}`."
        )
    else:
        used = [NOUNS.get(m, m) for m in pred.get("modalities") or []]
        evidence = (
            f"the face looks **{pred['face_emotion']}**"
            if pred.get("face_emotion")
            else f"the voice sounds **{pred['voice_emotion']}**"
        )
        lines.append(
            f"Only the **{' and '.join(used)}** was analysed ({evidence}): the face/voice "
            "consistency cue was unavailable, and the verdict comes from that modality's own "
            "head (see the warnings)."
        )
    model = pred.get("model") or {}
    if model:
        lines.append(
            f"Model: `{html.escape(str(model.get('name')))}`, trained on "
            f"{html.escape(str(model.get('training_data')))}."
        )
    return "\n\n".join(lines)


def emotion_figure(pred: dict[str, Any]) -> go.Figure:
    """Face and voice emotion distributions side by side, one bar pair per emotion."""
    fig = go.Figure()
    for name, key, colour in (
        ("face", "face_emotions", FACE_COLOUR),
        ("voice", "voice_emotions", VOICE_COLOUR),
    ):
        fig.add_bar(
            name=name,
            x=list(EMOTIONS),
            y=[pred[key].get(e, 0.0) for e in EMOTIONS],
            marker_color=colour,
            hovertemplate="%{x}: %{y:.2f}<extra>" + name + "</extra>",
        )
    consistency = pred.get("consistency")
    fig.update_layout(
        barmode="group",
        title=f"Face vs voice emotion (consistency {consistency:.2f})"
        if consistency is not None
        else f"{' and '.join(NOUNS.get(m, m) for m in pred.get('modalities') or [])} emotion "
        "only (no consistency)",
        yaxis={"title": "probability", "range": [0, 1]},
        legend={"orientation": "h", "y": 1.12, "x": 1, "xanchor": "right"},
        margin={"l": 50, "r": 20, "t": 60, "b": 40},
        height=320,
    )
    return fig


def media_seconds(pred: dict[str, Any]) -> float:
    """Length of the media in seconds: the video's, or the voice's when it runs longer.

    Every time axis of the page spans ``[0, media_seconds]``, so a voice shorter than its
    video shows where it really is in the clip.
    """
    ends = [float(s["end"]) for s in pred.get("segments") or []]
    return max([float(pred.get("duration") or 0.0), *ends, 1e-3])


def _window_edges(segments: Sequence[dict[str, Any]]) -> list[float]:
    """Sorted distinct start and end times of the windows: the cell edges of the heat strips."""
    return sorted({float(s["start"]) for s in segments} | {float(s["end"]) for s in segments})


def _strip(segments: Sequence[dict[str, Any]], key: str, edges: Sequence[float]) -> list[list]:
    """(emotion, cell) probabilities between consecutive ``edges``.

    A cell covered by one window shows that window; where windows overlap it shows their mean;
    a stretch no window covers (after the voice ends) stays empty.
    """
    rows: list[list] = [[] for _ in EMOTIONS]
    for left, right in itertools.pairwise(edges):
        covering = [s for s in segments if s["start"] <= left and s["end"] >= right]
        for row, emotion in zip(rows, EMOTIONS):
            values = [s[key].get(emotion, 0.0) for s in covering]
            row.append(float(np.mean(values)) if values else None)
    return rows


def _spans(segments: Sequence[dict[str, Any]], key: str) -> tuple[list, list]:
    """x, y of one horizontal stroke per window, from its start to its end (None breaks them)."""
    xs: list = []
    ys: list = []
    for s in segments:
        xs += [s["start"], s["end"], None]
        ys += [s[key], s[key], None]
    return xs, ys


def timeline_figure(pred: dict[str, Any]) -> go.Figure:
    """Per-window fake probability and consistency, over face and voice emotion heat strips.

    Time runs in seconds of the media, from 0 to its end; each window is drawn over its own
    span (a stroke, a run of heat cells), so overlapping windows overlap on the page too.
    """
    segments = pred["segments"]
    if not segments:
        return go.Figure().update_layout(
            title="No timeline: only one modality was analysed", height=200
        )
    edges = _window_edges(segments)
    fig = make_subplots(
        rows=3,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.08,
        row_heights=[0.4, 0.3, 0.3],
        subplot_titles=(
            "",
            "face emotion (overlapping windows: their mean)",
            "voice emotion (overlapping windows: their mean)",
        ),
    )
    for key, name, line in (
        ("fake_probability", "fake probability", {"color": FAKE_COLOUR, "width": 3}),
        ("consistency", "consistency", {"color": CONSISTENCY_COLOUR, "dash": "dot", "width": 3}),
    ):
        xs, ys = _spans(segments, key)
        fig.add_scatter(
            x=xs,
            y=ys,
            name=name,
            mode="lines+markers",
            line=line,
            marker={"symbol": "line-ns", "size": 10, "line": {"width": 2, "color": line["color"]}},
            hovertemplate=name + " %{y:.2f} at %{x:.2f} s<extra></extra>",
            row=1,
            col=1,
        )
    fig.add_hline(
        y=pred["threshold"],
        line={"color": "grey", "dash": "dash"},
        row=1,
        col=1,
        annotation_text="threshold",
        annotation_position="top left",
    )
    for row, key in ((2, "face_emotions"), (3, "voice_emotions")):
        if len(edges) < 2:
            continue
        fig.add_heatmap(
            x=edges,
            y=list(EMOTIONS),
            z=_strip(segments, key, edges),
            zmin=0,
            zmax=1,
            colorscale="Viridis",
            showscale=row == 2,
            colorbar={"title": "p", "len": 0.55, "y": 0.3},
            hoverongaps=False,
            hovertemplate="%{y} near %{x:.2f} s: %{z:.2f}<extra></extra>",
            row=row,
            col=1,
        )
    fig.update_yaxes(range=[0, 1], title_text="probability", row=1, col=1)
    for row in (2, 3):
        fig.update_yaxes(tickmode="array", tickvals=list(EMOTIONS), row=row, col=1)
    fig.update_xaxes(range=[0.0, media_seconds(pred)])
    fig.update_xaxes(title_text="time in the media (s)", row=3, col=1)
    fig.update_layout(
        height=600,
        title="Per-window fake probability and consistency, face and voice emotions",
        margin={"l": 90, "r": 20, "t": 80, "b": 40},
        legend={"orientation": "h", "y": 1.06, "x": 1, "xanchor": "right"},
    )
    return fig


def scores_markdown(pred: dict[str, Any]) -> str:
    """Per-modality fake scores and fusion weights as a table, with the timings below it.

    The weight column appears only for fusions that weigh the modalities (adaptive, late with
    learnt weights): a column of dashes would only say that the others have none.
    """
    scores = pred.get("modality_scores") or {}
    weights = pred.get("fusion_weights") or {}
    lines = [f"**Fusion `{pred['fusion']}`**", ""]
    if scores or weights:
        modalities = sorted(set(scores) | set(weights))
        columns = [("fake probability alone", scores)]
        if weights:
            columns.append(("fusion weight", weights))
        lines += [
            "| modality | " + " | ".join(title for title, _ in columns) + " |",
            "|---" * (len(columns) + 1) + "|",
        ]
        for modality in modalities:
            cells = [f"{col[modality]:.2f}" if modality in col else "—" for _, col in columns]
            lines.append(f"| {modality} | " + " | ".join(cells) + " |")
    else:
        lines.append(
            "This fusion scores the two modalities jointly: it has no per-modality "
            "scores or weights."
        )
    timings = pred.get("timings") or {}
    if timings:
        lines += ["", "Time: " + ", ".join(f"{k} {v:.2f} s" for k, v in timings.items())]
    return "\n".join(lines)


def warnings_markdown(pred: dict[str, Any]) -> str:
    """The detector's warnings as a list, or a line saying there are none."""
    warnings = pred.get("warnings") or []
    if not warnings:
        return "No warnings."
    return "\n".join(f"- **Warning:** {html.escape(w)}" for w in warnings)


def gallery_items(crops: np.ndarray, pred: dict[str, Any]) -> list[tuple[np.ndarray, str]]:
    """(face crop, caption) pairs: when each face was seen and the emotion it shows.

    Captions are two short lines (the page lets them wrap) so that narrow thumbnails show them
    whole: when and what emotion on the first, the face detector's score on the second.
    """
    items = []
    for crop, face in zip(crops, pred["faces"]):
        emotions = face.get("emotions") or {}
        top = max(emotions, key=emotions.__getitem__) if emotions else "?"
        when = (
            f"{face['time']:.1f} s"
            if face.get("time") is not None
            else f"image {face['frame_index'] + 1}"
        )
        caption = f"{when} · {top} {emotions.get(top, 0.0):.2f}\nface {face['score']:.2f}"
        items.append((crop, caption))
    return items


def voice_seconds(log_mel: np.ndarray) -> float:
    """Length of the recording a log-mel spectrogram was computed from, in seconds.

    With centred frames, ``T`` columns come from ``(T - 1) * hop`` samples (to within a hop).
    """
    from mmdeepfake.media import features

    return max(log_mel.shape[1] - 1, 0) * features.HOP_LENGTH / features.SAMPLE_RATE


def spectrogram_figure(
    log_mel: np.ndarray, duration: float, segments: Sequence[dict[str, Any]]
) -> Figure:
    """The log-mel spectrogram the audio encoder sees, over the media's time axis.

    The spectrogram covers the voice's own length (not the video's ``duration``); the axis runs
    to the end of the media, with the voiceless rest shaded. Each analysis window is a bar
    under the spectrogram over its true span, in two alternating lanes so that overlapping
    windows stay apart.
    """
    from matplotlib.figure import Figure

    voice = voice_seconds(log_mel)
    ends = [float(s["end"]) for s in segments]
    total = max([duration, voice, *ends, 1e-3])
    n_mels = log_mel.shape[0]
    lane = n_mels / 8

    fig = Figure(figsize=(9, 2.8), dpi=100)
    ax = fig.add_subplot()
    ax.imshow(
        log_mel,
        origin="lower",
        aspect="auto",
        cmap="magma",
        extent=(0.0, max(voice, 1e-3), 0, n_mels),
    )
    if total > voice:
        ax.axvspan(voice, total, ymin=0, ymax=1, color="0.85", zorder=0)
        ax.text((voice + total) / 2, n_mels / 2, "no voice", ha="center", va="center", color="0.4")
    for i, seg in enumerate(segments):
        start, end = float(seg["start"]), float(seg["end"])
        y = -lane * (1.2 + 1.1 * (i % 2))
        ax.broken_barh([(start, end - start)], (y, lane * 0.8), color=VOICE_COLOUR)
    ax.set_xlim(0.0, total)
    ax.set_ylim(-lane * 2.5, n_mels)
    ax.set_yticks([0, n_mels // 2, n_mels])
    ax.set_xlabel("time in the media (s)")
    ax.set_ylabel("mel bin")
    ax.set_title("Voice: log-mel spectrogram (bars below: analysis windows)", fontsize=10)
    fig.tight_layout()
    return fig


def spectrogram_image(
    log_mel: np.ndarray, duration: float, segments: Sequence[dict[str, Any]]
) -> np.ndarray:
    """:func:`spectrogram_figure` rendered as an RGB array for ``gr.Image``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = spectrogram_figure(log_mel, duration, segments)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()
