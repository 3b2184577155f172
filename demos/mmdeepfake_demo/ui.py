"""The page layout and its wiring: ``build_app`` makes the Blocks, ``launch`` serves them.

Detection runs as a chain of events so that the API stays clean and the verdict shows early:
clear the old results → detect (the named API endpoint, returning the Prediction dictionary,
and keeping the face crops and voice it scored in the page session's state, which the API
does not expose) → show the verdict → draw the explanation views from that state (plotting
takes longer than the verdict a visitor waits for).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import gradio as gr

from mmdeepfake_demo.examples import ExampleSet, default_folder, prepare_examples
from mmdeepfake_demo.handlers import Handlers
from mmdeepfake_demo.models import LoadedModel, ModelCatalog, ModelStore

if TYPE_CHECKING:
    from mmdeepfake import Detector

MAX_FILE_SIZE = "50mb"  # uploads above this are refused before any decoding
CONCURRENCY_LIMIT = 2  # detections running at once; the rest wait in the queue
QUEUE_SIZE = 64  # requests allowed to wait; more are turned away with a message
MAX_FRAMES = 64

# Gallery captions wrap onto their two lines instead of being cut with an ellipsis.
CSS = """
#gallery .caption-label { white-space: pre-line; max-width: 100%; overflow: visible; }
"""

# Runs in the browser before a new detection: closes the error messages of earlier runs, so an
# old message never sits over the new result.
CLOSE_OLD_MESSAGES = """
() => { document.querySelectorAll('[data-testid="toast-close"]').forEach((b) => b.click()); }
"""

API_HELP = """
### Calling the page from Python

```python
from gradio_client import Client, handle_file

client = Client("http://127.0.0.1:7860/")  # the URL the page printed at start-up
video = client.predict(handle_file("clip.mp4"), 0.5, 16, None, api_name="/detect")
pair = client.predict(handle_file("face.jpg"), handle_file("voice.wav"), 0.5, None,
                      api_name="/detect_pair")
print(video["label"], video["fake_probability"], video["face_emotion"], video["voice_emotion"])
```

Both endpoints return the `Prediction` dictionary of `mmdeepfake` (label, fake_probability,
threshold, face/voice emotions, consistency, modality scores, fusion weights, segments, faces,
warnings, modalities, domain, model). Arguments: the media, the decision threshold, the number
of frames to sample (video only) and the fusion strategy (`None` for the model's own).
`/detect_pair` takes a face image, a voice, or both (`None` for the missing one); a video
without sound is scored from its faces. One modality alone has no consistency (`None`).
"""


def build_app(
    model: Detector | LoadedModel,
    *,
    examples: ExampleSet | None = None,
    examples_dir: str | Path | None = None,
    catalog: ModelCatalog | None = None,
) -> gr.Blocks:
    """The demo page for ``model``, with its queue set up; serve it with :func:`launch`.

    Args:
        model: a detector, or a :class:`LoadedModel` (which may carry several fusions).
        examples: example media to offer; by default they are generated into ``examples_dir``
            (a folder under the system's temporary directory, reused across runs, when not
            given).
        catalog: the other models a visitor may load in the Model tab (by default only the
            starter).
    """
    if not isinstance(model, LoadedModel):
        model = LoadedModel(getattr(model, "name", "detector"), {model.fusion_name: model})
    if examples is None:
        examples = prepare_examples(examples_dir or default_folder())
    handlers = Handlers(ModelStore(model, catalog=catalog))
    detector = model.default

    with gr.Blocks(title="mmdeepfake — audio-visual deepfake detection") as app:
        spec = gr.State(None)  # None: the model the page started with
        shown = gr.State(None)  # the face crops and voice of the last detection, for the views
        gr.Markdown(
            "# mmdeepfake: is this face and voice a deepfake?\n"
            "The detector reads the emotion on the face and in the voice and checks that they "
            "agree; deepfakes that alter one modality tend to break that agreement."
        )
        header = gr.Markdown(model.describe(), elem_id="model-header")

        with gr.Tab("Detect"), gr.Row():
            with gr.Column(scale=2, min_width=320):
                with gr.Tab("Video"):
                    video = gr.Video(
                        label="Video (upload or record); without sound, the faces alone are scored",
                        sources=["upload", "webcam"],
                        format=None,
                        include_audio=True,
                        elem_id="video-input",
                    )
                    detect_button = gr.Button("Detect", variant="primary", elem_id="detect")
                    gr.Examples(
                        examples=[[v] for v in examples.videos],
                        inputs=[video],
                        example_labels=examples.video_captions,
                        label="Examples (generated synthetic clips)",
                    )
                with gr.Tab("Face and/or voice"):
                    gr.Markdown(
                        "Give a face image, a voice recording, or both. One alone is scored by "
                        "that modality's own head, without the face/voice consistency cue."
                    )
                    image = gr.Image(
                        label="Face image",
                        type="filepath",
                        sources=["upload", "webcam", "clipboard"],
                    )
                    audio = gr.Audio(
                        label="Voice recording (upload or record)",
                        type="filepath",
                        sources=["upload", "microphone"],
                        format=None,
                    )
                    pair_button = gr.Button("Detect", variant="primary", elem_id="detect-pair")
                    gr.Examples(
                        examples=[list(p) for p in examples.pairs],
                        inputs=[image, audio],
                        example_labels=examples.pair_captions,
                        label="Example (real photograph; the voice is synthesised speech)",
                    )
                with gr.Accordion("Settings", open=True):
                    threshold = gr.Slider(
                        0.0,
                        1.0,
                        value=detector.threshold,
                        step=0.01,
                        label="Decision threshold (fake probability at or above it → fake)",
                    )
                    num_frames = gr.Slider(
                        1,
                        MAX_FRAMES,
                        value=detector.num_frames,
                        step=1,
                        label="Frames to sample from a video",
                    )
                    fusion = gr.Dropdown(
                        choices=model.fusions,
                        value=model.fusions[0],
                        interactive=len(model.fusions) > 1,
                        label="Fusion strategy"
                        if len(model.fusions) > 1
                        else "Fusion strategy (this model has one)",
                    )
            with gr.Column(scale=3):
                verdict = gr.Label(label="Verdict", num_top_classes=3, elem_id="verdict")
                summary = gr.Markdown(elem_id="summary")
                emotions_plot = gr.Plot(label="Face vs voice emotions", elem_id="emotions")
                timeline_plot = gr.Plot(label="Timeline", elem_id="timeline")
                gallery = gr.Gallery(
                    label="Faces analysed",
                    columns=6,
                    height=220,
                    object_fit="contain",
                    fit_columns=False,
                    elem_id="gallery",
                )
                spectrogram = gr.Image(
                    label="Voice spectrogram", type="numpy", elem_id="spectrogram"
                )
                scores = gr.Markdown(elem_id="scores")
                warnings = gr.Markdown(elem_id="warnings")
                with gr.Accordion("Prediction (the API's answer)", open=False):
                    prediction = gr.JSON(label="Prediction")

        with gr.Tab("Model"):
            model_info = gr.Markdown(model.describe())
            model_spec = gr.Textbox(
                label="Load another model offered by this page",
                placeholder=", ".join((catalog or ModelCatalog()).offered()[:4]),
            )
            load_button = gr.Button("Load")
            load_status = gr.Markdown(elem_id="load-status")

        with gr.Tab("API"):
            gr.Markdown(API_HELP)

        results = [
            verdict,
            summary,
            emotions_plot,
            timeline_plot,
            gallery,
            spectrogram,
            scores,
            warnings,
            prediction,
        ]
        views = [emotions_plot, timeline_plot, gallery, spectrogram, scores, warnings]
        limits = {"concurrency_limit": CONCURRENCY_LIMIT, "concurrency_id": "detector"}

        def wire(button, detect_fn, detect_inputs, api_name):
            """Clear old results, detect (the named API endpoint), then show the evidence."""
            (
                button.click(
                    handlers.cleared,
                    None,
                    results,
                    js=CLOSE_OLD_MESSAGES,
                    queue=False,
                    api_visibility="private",
                )
                .then(detect_fn, detect_inputs, [prediction, shown], api_name=api_name, **limits)
                .success(
                    handlers.verdict,
                    prediction,
                    [verdict, summary],
                    queue=False,
                    api_visibility="private",
                )
                .success(
                    handlers.explain, [prediction, shown], views, api_visibility="private", **limits
                )
            )

        wire(
            detect_button,
            handlers.detect,
            [video, threshold, num_frames, fusion, spec],
            "detect",
        )
        wire(
            pair_button,
            handlers.detect_pair,
            [image, audio, threshold, fusion, spec],
            "detect_pair",
        )
        load_button.click(
            handlers.load_model,
            [model_spec, spec],
            [spec, header, model_info, fusion, threshold, num_frames, load_status],
            api_visibility="private",
            concurrency_limit=1,
        )
    app.queue(default_concurrency_limit=CONCURRENCY_LIMIT, max_size=QUEUE_SIZE)
    return app


def launch(
    app: gr.Blocks,
    *,
    host: str = "127.0.0.1",
    port: int | None = 7860,
    share: bool = False,
    block: bool = True,
) -> str:
    """Serve the page with the demo's safety limits; returns its local URL.

    With ``block=False`` the server runs in a background thread (tests stop it with
    ``app.close()``).
    """
    app.launch(
        server_name=host,
        server_port=port,
        share=share,
        max_file_size=MAX_FILE_SIZE,
        allowed_paths=[],  # serve nothing but uploads and files the page itself created
        show_error=False,  # unexpected errors are reported by the handlers, without traces
        prevent_thread_lock=True,
        quiet=True,
        footer_links=["api", "gradio"],
        css=CSS,
    )
    url = app.share_url or app.local_url
    if block:
        print(f"mmdeepfake demo running at {url}  (Ctrl+C to stop)", flush=True)
        app.block_thread()
    return url
