"""Explanation views: turn a prediction dictionary into what the page shows.

Every function takes the dictionary of ``Prediction.to_dict()`` — the same object the API
endpoints return — so the page explains exactly what an API caller receives. Figures are plotly
(interactive in the page); the spectrogram is a still image drawn with matplotlib's object API
(no pyplot state, so concurrent requests cannot draw into each other's figures).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from mmdeepfake.labels import EMOTIONS

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
        unfamiliar_banner(pred)
        + f"### {label} — fake probability {pred['fake_probability']:.2f} "
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


def timeline_figure(pred: dict[str, Any]) -> go.Figure:
    """Per-segment fake probability and consistency, over face and voice emotion heat strips."""
    segments = pred["segments"]
    if not segments:
        return go.Figure().update_layout(
            title="No timeline: only one modality was analysed", height=200
        )
    mids = [(s["start"] + s["end"]) / 2 for s in segments]
    fig = make_subplots(
        rows=3,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.08,
        row_heights=[0.4, 0.3, 0.3],
        subplot_titles=("", "face emotion", "voice emotion"),
    )
    fig.add_scatter(
        x=mids,
        y=[s["fake_probability"] for s in segments],
        name="fake probability",
        mode="lines+markers",
        line={"color": FAKE_COLOUR},
        row=1,
        col=1,
    )
    fig.add_scatter(
        x=mids,
        y=[s["consistency"] for s in segments],
        name="consistency",
        mode="lines+markers",
        line={"color": CONSISTENCY_COLOUR, "dash": "dot"},
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
        z = [[s[key].get(e, 0.0) for s in segments] for e in EMOTIONS]
        fig.add_heatmap(
            x=mids,
            y=list(EMOTIONS),
            z=z,
            zmin=0,
            zmax=1,
            colorscale="Viridis",
            showscale=row == 2,
            colorbar={"title": "p", "len": 0.55, "y": 0.3},
            hovertemplate="%{y} at %{x:.1f} s: %{z:.2f}<extra></extra>",
            row=row,
            col=1,
        )
    fig.update_yaxes(range=[0, 1], title_text="probability", row=1, col=1)
    for row in (2, 3):
        fig.update_yaxes(tickmode="array", tickvals=list(EMOTIONS), row=row, col=1)
    fig.update_xaxes(title_text="time (s)", row=3, col=1)
    fig.update_layout(
        height=600,
        title="Per-window fake probability and consistency, face and voice emotions",
        margin={"l": 90, "r": 20, "t": 80, "b": 40},
        legend={"orientation": "h", "y": 1.06, "x": 1, "xanchor": "right"},
    )
    return fig


def scores_markdown(pred: dict[str, Any]) -> str:
    """Per-modality fake scores and fusion weights as a table, with the timings below it."""
    scores = pred.get("modality_scores") or {}
    weights = pred.get("fusion_weights") or {}
    lines = [f"**Fusion `{pred['fusion']}`**", ""]
    if scores or weights:
        lines += ["| modality | fake probability alone | fusion weight |", "|---|---|---|"]
        for modality in sorted(set(scores) | set(weights)):
            score = f"{scores[modality]:.2f}" if modality in scores else "—"
            weight = f"{weights[modality]:.2f}" if modality in weights else "—"
            lines.append(f"| {modality} | {score} | {weight} |")
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
    """(face crop, caption) pairs: when each face was seen and the emotion it shows."""
    items = []
    for crop, face in zip(crops, pred["faces"]):
        emotions = face.get("emotions") or {}
        top = max(emotions, key=emotions.__getitem__) if emotions else "?"
        when = (
            f"{face['time']:.1f} s"
            if face.get("time") is not None
            else f"image {face['frame_index'] + 1}"
        )
        caption = f"{when} · {top} {emotions.get(top, 0.0):.2f} · face score {face['score']:.2f}"
        items.append((crop, caption))
    return items


def spectrogram_image(
    log_mel: np.ndarray, duration: float, segments: Sequence[dict[str, Any]]
) -> np.ndarray:
    """The log-mel spectrogram the audio encoder sees, with analysis windows marked, as RGB."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 2.8), dpi=100)
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.imshow(
        log_mel,
        origin="lower",
        aspect="auto",
        cmap="magma",
        extent=(0.0, max(duration, 1e-3), 0, log_mel.shape[0]),
    )
    for seg in segments:
        ax.axvline(seg["start"], color="white", lw=0.8, ls="--", alpha=0.7)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("mel bin")
    ax.set_title("Voice: log-mel spectrogram (dashed lines: analysis windows)", fontsize=10)
    fig.tight_layout()
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()
