"""What a newcomer trips over: the page's time axes and messages, the tools' help and logs,
the plots and the evaluation report.

Figures are checked through their objects (plotly layouts, matplotlib axes), the demo's port
handling and the tools' logs through real processes with their output redirected to files.
"""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from mmdeepfake import Detector
from mmdeepfake.testing import media as mf
from tiny_models import TINY_ARCH

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts"
VIDEO_SECONDS = 4.64
VOICE_SECONDS = 2.79  # the voice stops before the video does (AAC adds ~25 ms)

# --- the page -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo():
    """The demo's package (demos/mmdeepfake_demo), imported the way demos/app.py does."""
    pytest.importorskip("gradio")
    sys.path.insert(0, str(REPO / "demos"))
    import mmdeepfake_demo.handlers
    import mmdeepfake_demo.media
    import mmdeepfake_demo.views

    return mmdeepfake_demo


@pytest.fixture(scope="module")
def short_voice_video(tmp_path_factory) -> Path:
    """A 4.64 s face video whose voice lasts 2.79 s."""
    folder = tmp_path_factory.mktemp("short-voice")
    frames = mf.face_frames(round(VIDEO_SECONDS * 25), (320, 240))
    return mf.write_video(folder / "short_voice.mp4", frames, audio=mf.voice_like(VOICE_SECONDS))


@pytest.fixture(scope="module")
def short_voice_prediction(short_voice_video) -> dict:
    torch.manual_seed(0)
    return Detector(**TINY_ARCH).predict(short_voice_video, num_frames=6).to_dict()


def test_short_voice_has_overlapping_windows_that_end_with_the_voice(short_voice_prediction):
    """The premise of the time-axis tests: two windows overlap and the last ends at 2.79 s."""
    segments = short_voice_prediction["segments"]
    assert short_voice_prediction["duration"] == pytest.approx(VIDEO_SECONDS, abs=0.05)
    assert len(segments) == 2 and segments[1]["start"] < segments[0]["end"]
    assert segments[-1]["end"] == pytest.approx(VOICE_SECONDS, abs=0.05)


def test_timeline_runs_over_the_whole_media_with_windows_over_their_spans(
    demo, short_voice_prediction
):
    pred = short_voice_prediction
    segments = pred["segments"]
    fig = demo.views.timeline_figure(pred)
    for axis in ("xaxis", "xaxis2", "xaxis3"):
        assert fig.layout[axis].range == pytest.approx((0.0, pred["duration"]))
    strokes = [t for t in fig.data if t.type == "scatter"]
    assert {t.name for t in strokes} == {"fake probability", "consistency"}
    for trace in strokes:
        starts_ends = [x for x in trace.x if x is not None]
        assert starts_ends == [v for s in segments for v in (s["start"], s["end"])]
    heat = [t for t in fig.data if t.type == "heatmap"]
    assert len(heat) == 2
    edges = sorted({s["start"] for s in segments} | {s["end"] for s in segments})
    for trace in heat:
        # cell edges are the windows' own starts and ends: the strip begins at 0 and ends
        # where the voice does, not at window midpoints
        assert list(trace.x) == pytest.approx(edges)
        assert trace.x[0] == 0.0 and trace.x[-1] == pytest.approx(VOICE_SECONDS, abs=0.05)
        assert len(trace.z[0]) == len(edges) - 1


def test_heat_strip_cells_show_each_window_and_the_mean_where_they_overlap(demo):
    first = {e: 0.0 for e in ("neutral", "happy")} | {"neutral": 1.0}
    second = {"neutral": 0.0, "happy": 1.0}
    segments = [
        {"start": 0.0, "end": 2.0, "face_emotions": first},
        {"start": 1.0, "end": 3.0, "face_emotions": second},
    ]
    edges = [0.0, 1.0, 2.0, 3.0]
    rows = dict(zip(demo.views.EMOTIONS, demo.views._strip(segments, "face_emotions", edges)))
    assert rows["neutral"] == [1.0, 0.5, 0.0]
    assert rows["happy"] == [0.0, 0.5, 1.0]
    gap = demo.views._strip(
        segments[:1] + [{**segments[1], "start": 2.5}], "face_emotions", [0.0, 2.0, 2.5, 3.0]
    )
    assert gap[0][1] is None  # no window between 2.0 and 2.5 s: an empty cell, not a zero


def test_spectrogram_spans_the_voice_on_an_axis_of_the_whole_media(
    demo, short_voice_video, short_voice_prediction
):
    pred = short_voice_prediction
    torch.manual_seed(0)
    kept = Detector(**TINY_ARCH).pipeline.run(short_voice_video, num_frames=6, keep_media=True)
    wave = demo.media.shown_media(kept).wave
    fig = demo.views.spectrogram_figure(
        demo.media.log_mel(wave), pred["duration"], pred["segments"]
    )
    ax = fig.axes[0]
    assert ax.get_xlim() == pytest.approx((0.0, pred["duration"]))
    left, right, _, _ = ax.images[0].get_extent()
    assert left == 0.0 and right == pytest.approx(VOICE_SECONDS, abs=0.05)
    boxes = [collection.get_paths()[0].get_extents() for collection in ax.collections]
    bars = sorted((box.x0, box.x1) for box in boxes)
    spans = sorted((s["start"], s["end"]) for s in pred["segments"])
    assert np.allclose(bars, spans)
    png = demo.views.spectrogram_image(demo.media.log_mel(wave), pred["duration"], pred["segments"])
    assert png.ndim == 3 and png.shape[2] == 3


def test_fusion_weight_column_only_for_fusions_that_weigh(demo):
    base = {"fusion": "late", "modality_scores": {"image": 0.2, "audio": 0.7}}
    unweighted = demo.views.scores_markdown({**base, "fusion_weights": None})
    assert "fusion weight" not in unweighted and "—" not in unweighted
    assert "| image | 0.20 |" in unweighted
    weighted = demo.views.scores_markdown({**base, "fusion_weights": {"image": 0.4, "audio": 0.6}})
    assert "| image | 0.20 | 0.40 |" in weighted and "fusion weight" in weighted


def test_gallery_captions_are_short_lines(demo):
    faces = [{"time": 0.24, "frame_index": 0, "score": 0.991, "emotions": {"angry": 0.31}}]
    crops = np.zeros((1, 8, 8, 3), dtype=np.uint8)
    [(_, caption)] = demo.views.gallery_items(crops, {"faces": faces})
    assert caption.split("\n") == ["0.2 s · angry 0.31", "face 0.99"]


def test_refusals_are_logged_as_action_then_reason(demo, caplog):
    from gradio import Error
    from mmdeepfake_demo.handlers import Handlers

    with caplog.at_level(logging.INFO, logger="mmdeepfake_demo"), pytest.raises(Error):
        Handlers(store=None).detect(None, 0.5, 6, None)
    assert "Cannot analyse this video: refused: MediaNotFoundError: no video" in caplog.text


def _busy_port() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


@pytest.mark.parametrize("how", ["flag", "environment"])
def test_demo_on_a_busy_port_says_so_in_one_line(how):
    pytest.importorskip("gradio")
    with _busy_port() as sock:
        port = sock.getsockname()[1]
        args = ["--port", str(port)] if how == "flag" else []
        env = {**__import__("os").environ, "GRADIO_SERVER_PORT": str(port)}
        if how == "flag":
            env["GRADIO_SERVER_PORT"] = "1"  # the flag wins over the environment
        result = subprocess.run(
            [sys.executable, str(REPO / "demos" / "app.py"), *args],
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
            check=False,
        )
    assert result.returncode != 0
    assert f"error: port {port} is in use" in result.stderr
    assert "PORT=" in result.stderr
    assert "Traceback" not in result.stderr and "preparing" not in result.stdout


@pytest.mark.browser
def test_page_shows_the_short_voice_and_closes_old_messages(demo, short_voice_video, tmp_path):
    """In Chromium: an error's message is gone once the next run shows its result, and the
    gallery captions fit their thumbnails; the screenshot is kept in test-artifacts/."""
    pytest.importorskip("playwright", reason="playwright is not installed")
    from mmdeepfake_demo import build_app, launch
    from mmdeepfake_demo.browser import CHROMIUM_ARGS, find_chromium
    from playwright.sync_api import sync_playwright

    chromium = find_chromium()
    if chromium is None:
        pytest.skip("chromium is not installed (apt-get install chromium); `make browser` does it")
    torch.manual_seed(0)
    app = build_app(Detector(**TINY_ARCH), examples_dir=tmp_path)
    with _busy_port() as sock:  # a free port: taken, then released for the page
        port = sock.getsockname()[1]
    url = launch(app, host="127.0.0.1", port=port, block=False)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(url, timeout=120_000)
            page.locator("#video-input input[type=file]").set_input_files(str(short_voice_video))
            page.wait_for_selector("#video-input video", timeout=120_000)
            page.get_by_role("tab", name="Face and/or voice").click()
            page.click(
                "#detect-pair"
            )  # neither a face nor a voice: an error message (shown for 10 s)
            page.wait_for_selector(".toast-body", timeout=60_000)
            page.get_by_role("tab", name="Video").click()
            assert page.locator(".toast-body").count() == 1
            page.click("#detect")
            # gone before the new verdict arrives, not only when its own 10 s run out
            page.wait_for_selector(".toast-body", state="detached", timeout=3_000)
            page.wait_for_selector("#spectrogram img", timeout=300_000)
            page.wait_for_selector("#gallery img", timeout=300_000)
            page.wait_for_timeout(1000)
            assert page.locator(".toast-body").count() == 0
            cut = page.eval_on_selector_all(
                "#gallery .caption-label",
                "els => els.filter(e => e.scrollWidth > e.clientWidth + 1).length",
            )
            assert page.locator("#gallery .caption-label").count() > 0 and cut == 0
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "demo_short_voice.png"), full_page=True)
            browser.close()
    finally:
        app.close()


# --- the tools ----------------------------------------------------------------------------------

COMMANDS = ("train", "evaluate", "sweep", "synth", "prepare", "predict")


def _parser(command: str):
    import importlib

    return importlib.import_module(f"mmdeepfake.cli.{command}").build_parser()


@pytest.mark.parametrize("command", COMMANDS)
def test_every_flag_says_what_it_does_and_its_default(command):
    parser = _parser(command)
    for action in parser._actions:
        if action.dest == "help":
            continue
        text = action.help or ""
        assert text, f"{command} {action.option_strings or action.dest} has no help"
        assert "default" in text or "required" in text, (
            f"{command} {action.option_strings or action.dest}: {text!r} names no default"
        )


@pytest.mark.parametrize(
    ("command", "default"),
    [("train", 1), ("evaluate", 1), ("synth", 0), ("prepare", 0), ("predict", 0)],  # 0 warning
)
def test_verbosity_flags_are_one_convention(command, default):
    from mmdeepfake.cli._common import verbosity

    parser = _parser(command)
    required = {
        "evaluate": ["--model", "m"],
        "synth": ["--out", "o"],
        "prepare": ["src", "--format", "folders", "--out", "o"],
    }.get(command, [])
    assert verbosity(parser.parse_args(required)) == default
    assert verbosity(parser.parse_args([*required, "-q"])) == 0
    assert verbosity(parser.parse_args([*required, "-v"])) == min(default + 1, 2)
    assert verbosity(parser.parse_args([*required, "--verbose", "--verbose"])) == 2
    with pytest.raises(SystemExit):
        parser.parse_args([*required, "-v", "-q"])  # one or the other


def test_sweep_takes_the_training_verbosity_flags():
    """The sweep hands every flag it does not know to the training parser, -q and -v too."""
    from mmdeepfake.cli._common import verbosity

    for flag, level in (("-q", 0), ("-v", 2)):
        _, rest = _parser("sweep").parse_known_args(["--param", "lr", "--values", "1e-3", flag])
        assert rest == [flag]
        assert verbosity(_parser("train").parse_args(rest)) == level


@pytest.fixture(scope="module")
def synthetic_dataset(tmp_path_factory) -> Path:
    from mmdeepfake.data.storage import open_storage
    from mmdeepfake.data.synth import generate_dataset

    root = tmp_path_factory.mktemp("synthetic")
    generate_dataset(open_storage(root), clips=10, seed=5, variant="consistency", progress=False)
    return root


def test_redirected_training_log_has_one_event_per_line(synthetic_dataset, tmp_path):
    """Training with its output redirected to a file (no terminal): no progress-bar frames, and
    no warning about the generator's own labels/clips.csv."""
    config = tmp_path / "config.yaml"
    tiny = (REPO / "src" / "mmdeepfake" / "presets" / "tiny.yaml").read_text()
    config.write_text(tiny + "max_steps_per_epoch: 2\nplots: false\n")
    log_file = tmp_path / "train.log"
    env = {**__import__("os").environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}
    with log_file.open("w") as out:
        code = subprocess.call(
            [
                sys.executable,
                "-m",
                "mmdeepfake.cli.train",
                "--data",
                str(synthetic_dataset),
                "--config",
                str(config),
                "--output",
                str(tmp_path / "runs"),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            timeout=600,
        )
    text = log_file.read_text()
    assert code == 0, text
    assert "\r" not in text and "step/s" not in text and "s/step" not in text
    lines = text.splitlines()
    assert lines and all(line.startswith(("INFO ", "WARNING ", "run ", "  ")) for line in lines), (
        text
    )
    assert "clips.csv" not in text and "not in the dataset layout" not in text


# --- the plots and the report -------------------------------------------------------------------


def test_sample_plots_take_one_sample_per_clip(synthetic_dataset):
    from mmdeepfake.data.layout import clip_id, pair_samples, scan_dataset
    from mmdeepfake.data.storage import open_storage
    from mmdeepfake.train.trainer import distinct_clip_samples

    samples = pair_samples(scan_dataset(open_storage(synthetic_dataset), ""), "train")
    real = [s for s in samples if s.label == 0]
    assert len({clip_id(s.image_key) for s in real[:4]}) < 4  # the first few share a clip
    for key in ("image_key", "audio_key"):
        chosen = list(distinct_clip_samples(samples, 0, key))
        clips = [clip_id(getattr(s, key)) for s in chosen]
        assert len(chosen) == 3 and len(set(clips)) == 3  # 3 real training clips, once each
        assert all(s.label == 0 for s in chosen)


def _drawn_text(fig) -> str:
    texts = [fig._suptitle.get_text() if fig._suptitle else ""]
    for ax in fig.axes:
        texts += [ax.get_title(), ax.get_xlabel(), ax.get_ylabel()]
        texts += [t.get_text() for t in ax.texts]
        legend = ax.get_legend()
        if legend is not None:
            texts += [t.get_text() for t in legend.get_texts()]
    return "\n".join(texts)


@pytest.mark.parametrize("name", ["plot_loss_curves", "plot_accuracy_curves"])
def test_epoch_axes_have_whole_numbers_only(name):
    from mmdeepfake.reports import plots

    history = [
        {
            "epoch": e,
            "train_loss": 1.0 / e,
            "val_loss": 1.1 / e,
            "train_accuracy": 0.5,
            "val_accuracy": 0.6,
            "val_auc": 0.7,
        }
        for e in (1, 2)
    ]
    fig = getattr(plots, name)(history)
    ticks = [t for t in fig.axes[0].get_xticks() if 1 <= t <= 2]
    assert ticks and all(float(t).is_integer() for t in ticks), ticks


def test_emotion_heatmap_says_the_emotions_are_predictions():
    from mmdeepfake.reports import plots

    fig = plots.plot_emotion_consistency_heatmap([0, 1, 2], [0, 1, 3], [0, 0, 1])
    text = _drawn_text(fig)
    assert "predicted by the model" in text and "face emotion (predicted)" in text


def test_roc_curves_that_coincide_stay_visible_and_say_so():
    from mmdeepfake.reports import plots

    y = np.array([0, 0, 1, 1, 0, 1])
    s = np.array([0.1, 0.4, 0.35, 0.8, 0.2, 0.9])
    fig = plots.plot_roc_curve(y, s, {"face only": s.copy(), "voice only": s[::-1].copy()})
    ax = fig.axes[0]
    series = [line for line in ax.get_lines() if not line.get_label().startswith(("EER", "chance"))]
    assert len(series) == 3
    styles = {(line.get_linestyle(), line.get_marker()) for line in series}
    assert len(styles) == 3  # no two series drawn alike
    labels = [line.get_label() for line in series]
    assert "same curve as detector" in labels[1] and "same curve" not in labels[2]


def test_reliability_diagram_shows_counts_and_marks_sparse_bins():
    from mmdeepfake.calibration import reliability_bins
    from mmdeepfake.reports import plots

    rng = np.random.default_rng(0)
    probs = np.concatenate([rng.uniform(0.0, 0.1, 40), [0.55, 0.56], rng.uniform(0.9, 1.0, 40)])
    labels = (probs > 0.5).astype(int)
    fig = plots.plot_reliability_diagram(probs, probs, labels, n_bins=10, min_count=5)
    ax = fig.axes[0]
    counts = sorted(b.count for b in reliability_bins(probs, labels, 10) if b.count)
    shown = sorted(int(t.get_text()[2:]) for t in ax.texts if t.get_text().startswith("n="))
    assert shown == sorted(counts * 2)  # every bin's count, before and after scaling
    hollow = [line for line in ax.get_lines() if "bins with < 5 samples" in line.get_label()]
    assert len(hollow) == 2 and all(line.get_markerfacecolor() == "none" for line in hollow)
    assert all(list(line.get_xdata()) == pytest.approx([0.555]) for line in hollow)
    solid = [line for line in ax.get_lines() if "temperature scaling" in line.get_label()]
    assert all(0.555 not in np.round(line.get_xdata(), 3) for line in solid)


def test_fusion_figure_shows_the_numbers_of_the_sweep_table():
    from mmdeepfake.reports import plots
    from mmdeepfake.sweep import fusion_comparison_rows

    runs = [
        {
            "value": v,
            "run_id": f"s-{v}",
            "val_auc": a,
            "val_auc_image": i,
            "val_auc_audio": u,
            "test_auc": None,
        }
        for v, a, i, u in (("late", 0.8, 0.61, 0.52), ("mid", 0.9, 0.66, 0.55))
    ]
    table = fusion_comparison_rows(runs)
    fig = plots.plot_fusion_comparison(table)
    heights = [round(p.get_height(), 6) for p in fig.axes[0].patches]
    assert heights == [0.8, 0.61, 0.52, 0.9, 0.66, 0.55]
    assert [r["val_auc"] for r in table] == heights
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert sum("face only" in label for label in labels) == 2  # one per run, as in the table


def test_evaluation_counts_clips_and_pairs_apart(synthetic_dataset, tmp_path):
    import csv

    from mmdeepfake.cli.evaluate import format_table
    from mmdeepfake.data.layout import clip_id
    from mmdeepfake.evaluate.evaluator import evaluate

    torch.manual_seed(0)
    model = tmp_path / "model"
    Detector(**TINY_ARCH).save_pretrained(model)
    result = evaluate(
        str(model),
        data_dir=str(synthetic_dataset),
        prefix="",
        split="test",
        output=str(tmp_path / "out"),
        batch_size=8,
    )
    summary = result.summary
    rows = list(csv.DictReader((tmp_path / "out" / "predictions.csv").open()))
    clips = {clip_id(r["image_key"]) for r in rows}
    assert summary["pairs"] == summary["metrics"]["n"] == len(rows) == 8
    assert summary["clips"] == summary["clip_metrics"]["n"] == len(clips) == 2
    # a clip's score is the mean of its pairs' calibrated probabilities
    by_clip: dict[str, list[float]] = {}
    for r in rows:
        by_clip.setdefault(clip_id(r["image_key"]), []).append(float(r["fake_probability"]))
    fake_clip = next(
        c for c in clips if any(r["label"] == "1" and clip_id(r["image_key"]) == c for r in rows)
    )
    real_clip = next(iter(clips - {fake_clip}))
    expected_auc = float(np.mean(by_clip[fake_clip]) > np.mean(by_clip[real_clip]))
    assert summary["clip_metrics"]["roc_auc"] == pytest.approx(expected_auc)
    table = format_table(summary)
    assert "2 clips (1 real, 1 fake) scored as 8 pairs" in table
    page = (tmp_path / "out" / "index.html").read_text()
    assert "pairs (face frame + voice)" in page and "clips (mean over a clip" in page
