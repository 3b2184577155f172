"""What the page's buttons do: run the detector, explain its answer, switch models.

Handlers hold no model logic; they run the detector's pipeline (``Detector.pipeline.run``, the
work behind ``Detector.predict``, keeping the face crops and voice it scored for the views) and
the explanation views. Every
failure a visitor can cause comes back as ``gr.Error`` carrying the typed error's message (HTML
escaped, because Gradio renders it as HTML); anything unexpected is logged on the server and
shown as a short apology, never as a stack trace.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import gradio as gr

from mmdeepfake.errors import LOCAL_MODEL_FOLDER, MediaNotFoundError, MmDeepfakeError, render
from mmdeepfake_demo import media, views
from mmdeepfake_demo.models import LoadedModel, ModelStore

log = logging.getLogger("mmdeepfake_demo")

# How the page words the remedies errors name by hint (mmdeepfake.errors): only remedies a
# visitor can act on here; the page has no face-detection switch, so that hint says nothing.
PAGE_ADVICE: dict[str, str] = {
    LOCAL_MODEL_FOLDER: "Pick a model this page offers in the Model tab.",
}


def page_message(exc: MmDeepfakeError) -> str:
    """The error as the page shows it: its message with page advice, HTML-escaped (Gradio
    renders messages as HTML, also in what API callers receive)."""
    return html.escape(media.without_upload_folders(render(exc, PAGE_ADVICE)))


@contextmanager
def shown_in_page(action: str) -> Iterator[None]:
    """Turn exceptions into a readable ``gr.Error``; ``action`` titles the message box."""
    try:
        yield
    except gr.Error:
        raise
    except MmDeepfakeError as exc:
        log.info("%s: refused: %s: %s", action, type(exc).__name__, exc)
        raise gr.Error(page_message(exc), title=action, print_exception=False) from None
    except Exception:
        log.exception("%s failed unexpectedly", action)
        raise gr.Error(
            "Something unexpected went wrong on the server; the details are in its log. "
            "Try another file, or report the problem with the file that caused it.",
            title=action,
            print_exception=False,
        ) from None


class Handlers:
    """The page's callbacks, bound to the shared model store."""

    def __init__(self, store: ModelStore) -> None:
        self.store = store

    # --- detection (the two API endpoints) ----------------------------------------------------

    def detect(
        self,
        video: str | None,
        threshold: float,
        num_frames: float,
        fusion: str | None,
        spec: str | None = None,
    ) -> tuple[dict[str, Any], media.ShownMedia]:
        """Detect a deepfake in a video; returns the Prediction dictionary (the API's answer)
        and the crops and voice the views show. A video without usable sound (or without a
        face) is scored from the modality it has."""
        with shown_in_page("Cannot analyse this video"):
            path = media.checked_path(video, "video")
            detector = self.store.get(spec).detector(fusion)
            result = detector.pipeline.run(
                path, threshold=float(threshold), num_frames=int(num_frames), keep_media=True
            )
            return result.prediction.to_dict(), media.shown_media(result)

    def detect_pair(
        self,
        image: str | None,
        audio: str | None,
        threshold: float,
        fusion: str | None,
        spec: str | None = None,
    ) -> tuple[dict[str, Any], media.ShownMedia]:
        """Detect a deepfake in a face image, a voice recording, or both; returns the Prediction
        dictionary (the API's answer) and the crops and voice the views show. With one of them
        alone the verdict comes from that modality's own head."""
        with shown_in_page("Cannot analyse this face and voice"):
            given = _given(image, audio)
            detector = self.store.get(spec).detector(fusion)
            result = detector.pipeline.run(
                image=given.get("image"),
                audio=given.get("audio"),
                threshold=float(threshold),
                keep_media=True,
            )
            return result.prediction.to_dict(), media.shown_media(result)

    # --- explanation views ---------------------------------------------------------------------

    @staticmethod
    def verdict(pred: dict[str, Any]) -> tuple[dict[str, float], str]:
        """The verdict label and its one-paragraph reading, shown as soon as detection ends."""
        return views.verdict_label(pred), views.verdict_markdown(pred)

    @staticmethod
    def explain(pred: dict[str, Any], shown: media.ShownMedia) -> tuple:
        """Every explanation view, from the prediction and the media detection kept."""
        with shown_in_page("Cannot draw the explanation"):
            duration = float(pred.get("duration") or 0.0)
            return (
                views.emotion_figure(pred),
                views.timeline_figure(pred),
                views.gallery_items(shown.crops, pred),
                views.spectrogram_image(media.log_mel(shown.wave), duration, pred["segments"]),
                views.scores_markdown(pred),
                views.warnings_markdown(pred),
            )

    @staticmethod
    def cleared() -> tuple:
        """Empty results, so a failed run never leaves the previous verdict on screen."""
        # verdict, summary, emotion bars, timeline, gallery, spectrogram, scores, warnings, JSON
        return None, "", None, None, None, None, "", "", None

    # --- the Model tab ---------------------------------------------------------------------------

    def load_model(self, spec: str | None, current: str | None) -> tuple:
        """Switch this page session to another model; the message says what happened."""
        spec = (spec or "").strip()
        if not spec:
            raise gr.Error("Type the name of a model this page offers first.", title="No model")
        try:
            model = self.store.get(spec)
        except MmDeepfakeError as exc:
            message = f"**Could not load** `{html.escape(spec)}`: {page_message(exc)}"
            return (current, gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip(), message)
        return (spec, *self.model_widgets(model), f"**Loaded** `{html.escape(spec)}`.")

    @staticmethod
    def model_widgets(model: LoadedModel) -> tuple:
        """Updates for every widget that depends on the model: description and settings."""
        description = model.describe()
        detector = model.default
        return (
            description,
            description,
            fusion_dropdown(model),
            gr.update(value=detector.threshold),
            gr.update(value=detector.num_frames),
        )


def _given(image: str | None, audio: str | None) -> dict[str, str]:
    """The checked upload paths of whatever was given: a face image, a voice, or both."""
    if not image and not audio:
        raise MediaNotFoundError(
            "no face image and no voice recording were given; upload (or record) one of them, "
            "or both"
        )
    given = {}
    if image:
        given["image"] = media.checked_path(image, "face image")
    if audio:
        given["audio"] = media.checked_path(audio, "voice recording")
    return given


def fusion_dropdown(model: LoadedModel) -> dict[str, Any]:
    """The fusion setting: a choice where the model has several strategies, read-only otherwise."""
    several = len(model.fusions) > 1
    return gr.update(
        choices=model.fusions,
        value=model.fusions[0],
        interactive=several,
        label="Fusion strategy" if several else "Fusion strategy (this model has one)",
    )
