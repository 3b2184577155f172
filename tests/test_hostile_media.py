"""Hostile media: small inputs that used to crash the process, hang it or exhaust memory.

Each class of input is generated here (PyAV, soundfile, numpy) and sent through the public API
in a child process, and through `mmdeepfake-predict` as a user runs it, under a timeout and a
memory watch: the child's peak resident memory is its own high-water mark, polled every 50 ms
(``memory_watch``), and a watchdog kills it if it passes 2.5 GB, so a regression cannot take
pytest or the machine down. The answer must be a typed error or a finite verdict.
"""

from __future__ import annotations

import json
import logging
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
import torch

from memory_watch import tree_high_water_mark
from mmdeepfake import Detector
from mmdeepfake.errors import CorruptMediaError, MediaTooLargeError, UnsupportedMediaError
from mmdeepfake.evidence import AudioEvidence, encode_in_batches, fuse_in_batches, window_batches
from mmdeepfake.fusion import FUSIONS
from mmdeepfake.media import decode, limits
from mmdeepfake.media.audio import AudioSink
from mmdeepfake.prediction import Prediction
from mmdeepfake.testing import media as mf
from tiny_models import TINY_ARCH

pytestmark = pytest.mark.slow

TESTS = Path(__file__).parent
SRC = TESTS.parent / "src"
#: A child using more than this failed the test; the watchdog kills it at KILL_BYTES.
PEAK_BYTES = 1.5 * 1024**3
KILL_BYTES = 2.5 * 1024**3


# --- running a child under watch -----------------------------------------------------------------


def run_watched(args: list[str], timeout: float = 300) -> tuple[int, str, str, int]:
    """Run `args`; return (exit status, stdout, stderr, peak RSS in bytes of the child tree).

    A negative status is the signal that ended the child (-11: segmentation fault).
    """
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), str(TESTS)])}
    with open(os.devnull, "rb") as stdin:
        proc = subprocess.Popen(
            args,
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
        )
    import threading

    out: dict[str, str] = {}
    readers = [
        threading.Thread(target=lambda: out.__setitem__("stdout", proc.stdout.read())),
        threading.Thread(target=lambda: out.__setitem__("stderr", proc.stderr.read())),
    ]
    for reader in readers:
        reader.start()
    deadline = time.monotonic() + timeout
    watched = psutil.Process(proc.pid)
    peak = 0  # polled (see memory_watch): the rusage of a child includes this process's peak
    while True:
        peak = max(peak, tree_high_water_mark(watched))
        pid, status = os.waitpid(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline or _tree_rss(watched) > KILL_BYTES:
            for child in watched.children(recursive=True):
                child.kill()
            proc.kill()
            os.waitpid(proc.pid, 0)
            for reader in readers:
                reader.join()
            pytest.fail(
                f"{args[2:]} ran past {timeout} s or {KILL_BYTES / 1024**3} GB: "
                f"{out.get('stderr', '')[-2000:]}"
            )
        time.sleep(0.05)
    for reader in readers:
        reader.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, out["stdout"], out["stderr"], peak


def _tree_rss(proc: psutil.Process) -> int:
    try:
        procs = [proc, *proc.children(recursive=True)]
        return sum(p.memory_info().rss for p in procs)
    except psutil.Error:
        return 0


#: The child: predicts with a tiny detector (or the starter model) and prints one JSON line.
PREDICT_CHILD = """
import json, sys
import torch
from mmdeepfake import Detector
from mmdeepfake.errors import MmDeepfakeError
from tiny_models import TINY_ARCH

model, video, image, audio = sys.argv[1:5]
torch.manual_seed(0)
det = Detector.starter() if model == "starter" else Detector(**TINY_ARCH)
try:
    if video != "-":
        pred = det.predict(video, num_frames=4)
    else:
        pred = det.predict(image=image, audio=audio)
except MmDeepfakeError as exc:
    print(json.dumps({"error": type(exc).__name__, "message": str(exc)}))
else:
    print(json.dumps({"error": None, "prediction": json.loads(pred.to_json())}))
"""


def predict_in_child(
    *,
    video: Path | None = None,
    audio: Path | None = None,
    image: Path | None = None,
    model: str = "tiny",
    timeout: float = 300,
) -> dict:
    """The child's answer, after checking it exited cleanly within the memory limit."""
    args = [
        sys.executable,
        "-c",
        PREDICT_CHILD,
        model,
        str(video or "-"),
        str(image or "-"),
        str(audio or "-"),
    ]
    status, stdout, stderr, peak = run_watched(args, timeout)
    assert status == 0, f"child ended with {status}: {stderr[-2000:]}"
    assert peak < PEAK_BYTES, f"child peaked at {peak / 1024**3:.2f} GB"
    answer = json.loads(stdout.strip().splitlines()[-1])
    if answer["error"] is None:
        assert_finite_prediction(answer["prediction"])
    return answer


def assert_finite_prediction(record: dict) -> None:
    assert record["label"] in ("real", "fake", "uncertain")
    assert 0.0 <= record["fake_probability"] <= 1.0
    text = json.dumps(record, allow_nan=False)  # raises on NaN or Infinity
    assert "NaN" not in text and "Infinity" not in text


@pytest.fixture(scope="module")
def face_jpg(tmp_path_factory) -> Path:
    from PIL import Image

    path = tmp_path_factory.mktemp("face") / "face.jpg"
    Image.fromarray(mf.face_photo()).save(path)
    return path


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("model")
    Detector(**TINY_ARCH).save_pretrained(folder)
    return folder


def run_predict_cli(*args: str, timeout: float = 300) -> tuple[int, list[dict], str, int]:
    status, stdout, stderr, peak = run_watched(
        [sys.executable, "-m", "mmdeepfake.cli.predict", *args], timeout
    )
    return status, [json.loads(line) for line in stdout.splitlines()], stderr, peak


# --- 1. multichannel audio -----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["voice71.m4a", "voice71.mkv", "clip71.mp4"])
def test_multichannel_audio_gives_a_verdict(tmp_path, face_jpg, name):
    if name.startswith("clip"):
        path = mf.face_video(tmp_path / name, seconds=2.0, size=(160, 120), channels=8)
        answer = predict_in_child(video=path)
    else:
        path = mf.multichannel_audio(tmp_path / name, seconds=2.0, channels=8)
        answer = predict_in_child(image=face_jpg, audio=path)
    assert answer["error"] is None, answer


def test_multichannel_downmix_is_the_mean_of_the_channels(tmp_path):
    wave = decode.load_audio(mf.multichannel_audio(tmp_path / "v.mkv", seconds=2.0, channels=8))
    mono = decode.load_audio(mf.write_audio(tmp_path / "v.wav", mf.voice_like(2.0)))
    # channel c carries the voice at (1 - 0.05 c): the mean is 0.825 of it (AAC is lossy)
    ratio = np.sqrt(np.mean(wave[4000:-4000] ** 2) / np.mean(mono[4000:-4000] ** 2))
    assert ratio == pytest.approx(0.825, abs=0.04)


def test_multichannel_clip_in_the_cli_with_two_workers(tmp_path, model_dir):
    mf.face_video(tmp_path / "a71.mp4", seconds=2.0, size=(160, 120), channels=8)
    mf.face_video(tmp_path / "b.mp4", seconds=2.0, size=(160, 120))
    status, records, stderr, peak = run_predict_cli(
        str(tmp_path),
        "--model",
        str(model_dir),
        "--num-frames",
        "2",
        "--workers",
        "2",
        "--threads",
        "1",
        "--no-progress",
    )
    assert status == 0, stderr
    assert [Path(r["source"]).name for r in records] == ["a71.mp4", "b.mp4"]
    for record in records:
        assert record["error"] is None
        assert_finite_prediction(record)
    assert peak < PEAK_BYTES


# --- 2. sample rates -----------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [44099, 8001])
def test_odd_sample_rates_resample_in_bounded_memory(tmp_path, face_jpg, rate):
    path = mf.odd_rate_wav(tmp_path / f"v{rate}.wav", rate, seconds=3.0)
    answer = predict_in_child(image=face_jpg, audio=path)
    assert answer["error"] is None, answer


def test_odd_rate_keeps_length_and_pitch(tmp_path):
    path = mf.write_audio(tmp_path / "t.wav", mf.tone(1000, 3.0, 44099), 44099)
    wave = decode.load_audio(path)
    assert len(wave) == math.ceil(3.0 * 44099 * 16000 / 44099)
    spectrum = np.abs(np.fft.rfft(wave * np.hanning(len(wave))))
    assert np.fft.rfftfreq(len(wave), 1 / 16000)[spectrum.argmax()] == pytest.approx(1000, abs=2)


@pytest.mark.parametrize("rate", [3999, 400_000])
def test_absurd_sample_rates_are_refused(tmp_path, rate):
    path = tmp_path / f"r{rate}.wav"
    import soundfile as sf

    sf.write(str(path), np.zeros(rate // 10, np.float32) + 0.1, rate)
    with pytest.raises(UnsupportedMediaError, match=f"{rate} Hz"):
        decode.load_audio(path)
    with pytest.raises(UnsupportedMediaError, match="between"):
        decode.load_audio(mf.tone(440, 1.0, rate), source_rate=rate)


# --- 3. length bombs -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def four_hour_flac(tmp_path_factory) -> Path:
    return mf.long_flac(tmp_path_factory.mktemp("long") / "4h.flac", hours=4.0, sample_rate=8000)


def test_four_hour_flac_is_refused_from_its_header(four_hour_flac, face_jpg):
    assert four_hour_flac.stat().st_size < 5 * 1024**2
    started = time.perf_counter()
    with pytest.raises(MediaTooLargeError, match="240.0 minutes"):
        decode.load_audio(four_hour_flac)
    assert time.perf_counter() - started < 5  # nothing was decoded
    answer = predict_in_child(image=face_jpg, audio=four_hour_flac)
    assert answer["error"] == "MediaTooLargeError"


def test_duration_cap_applies_to_every_path(tmp_path):
    with pytest.raises(MediaTooLargeError):
        decode.load_audio(mf.voice_like(3.0), max_seconds=2.0)
    for suffix in (".wav", ".aac"):
        path = mf.write_audio(tmp_path / f"v{suffix}", mf.voice_like(3.0))
        with pytest.raises(MediaTooLargeError):
            decode.load_audio(path, max_seconds=2.0)
        assert len(decode.load_audio(path, max_seconds=4.0)) > 2.5 * 16000
    # A stream that announces no length meets the cap while it is decoded, block by block.
    sink = AudioSink("the stream", 16000, 16000, max_seconds=2.0)
    sink.push(mf.voice_like(1.5))
    with pytest.raises(MediaTooLargeError):
        sink.push(mf.voice_like(1.0))


def test_voice_windows_are_encoded_in_bounded_batches():
    torch.manual_seed(0)
    det = Detector(**TINY_ARCH).eval()
    wave = mf.voice_like(15.0)
    from mmdeepfake.media import features

    voice = AudioEvidence(wave=wave, windows=features.audio_windows(wave))
    batches = list(window_batches(voice, batch_windows=3))
    assert len(voice.windows) == 8 and [len(b) for b in batches] == [3, 3, 2]
    with torch.inference_mode():
        whole = det.model.encode_audio(features.waves_to_windows(wave, voice.windows))
        joined = encode_in_batches(det.model.encode_audio, iter(batches), len(voice.windows))
    for field in ("embedding", "tokens", "emotion_logits"):
        torch.testing.assert_close(getattr(joined, field), getattr(whole, field))


@pytest.mark.parametrize("fusion", FUSIONS.names())
def test_segments_fused_in_batches_match_one_call(fusion):
    torch.manual_seed(0)
    det = Detector(fusion=fusion, **TINY_ARCH).eval()
    with torch.inference_mode():
        faces = det.model.encode_image(torch.randn(3, 3, 224, 224))
        voices = det.model.encode_audio(torch.randn(7, 32512) * 0.1)
        groups = [[0], [0, 1], [1], [2], [1, 2], [2], [0, 2]]
        one = det.model.fuse(faces.pool(groups), voices)
        batched = fuse_in_batches(det.model.fuse, faces, groups, voices, batch_windows=3)
    for field in ("fake_logit", "face_emotion_logits", "voice_emotion_logits", "consistency"):
        torch.testing.assert_close(getattr(batched, field), getattr(one, field))
    assert batched.modality_logits.keys() == one.modality_logits.keys()
    for name in one.modality_logits:
        torch.testing.assert_close(batched.modality_logits[name], one.modality_logits[name])
    if one.fusion_weights is not None:
        torch.testing.assert_close(batched.fusion_weights, one.fusion_weights)


# --- 4. pixel bombs ------------------------------------------------------------------------------


def test_huge_frames_are_refused_before_decoding(tmp_path):
    path = tmp_path / "huge.mp4"
    make = (
        "import sys; from mmdeepfake.testing import media as mf; "
        "mf.huge_frame_video(sys.argv[1], (6000, 6000), 2)"
    )
    status, _, stderr, _ = run_watched([sys.executable, "-c", make, str(path)], timeout=120)
    assert status == 0, stderr
    assert path.stat().st_size < 1024**2
    answer = predict_in_child(video=path)
    assert answer["error"] == "MediaTooLargeError" and "6000x6000" in answer["message"]


def test_large_frames_are_scaled_down_while_decoding(tmp_path):
    path = mf.face_video(tmp_path / "big.mp4", seconds=0.2, size=(2560, 1440), with_audio=False)
    clip = decode.load_video(path, num_frames=2, require_audio=False)
    height, width = clip.frames.shape[1:3]
    assert height * width <= limits.MAX_DECODED_FRAME_PIXELS
    assert width / height == pytest.approx(2560 / 1440, rel=0.01)
    small = decode.load_video(path, num_frames=4, require_audio=False, max_total_pixels=400_000)
    assert small.frames.shape[0] * small.frames.shape[1] * small.frames.shape[2] <= 400_000
    frames = np.zeros((3, 2000, 3000, 3), np.uint8)
    with pytest.raises(MediaTooLargeError, match="3000x2000"):
        decode.load_video(frames, num_frames=3, require_audio=False, max_frame_pixels=5_000_000)


# --- 8. non-finite audio -------------------------------------------------------------------------


@pytest.mark.parametrize("value", [np.inf, np.nan, 1e30])
def test_non_finite_audio_is_refused(tmp_path, face_jpg, value):
    path = mf.float_wav(tmp_path / "v.wav", value)
    with pytest.raises(CorruptMediaError):
        decode.load_audio(path)
    wave = mf.voice_like(2.0)
    wave[100] = value
    with pytest.raises(CorruptMediaError):
        decode.load_audio(wave)
    answer = predict_in_child(image=face_jpg, audio=path)
    assert answer["error"] == "CorruptMediaError"


def test_prediction_json_is_strict():
    pred = Prediction(
        label="real",
        fake_probability=float("nan"),
        threshold=0.5,
        face_emotions={"happy": 1.0},
        voice_emotions={"happy": float("inf")},
        consistency=1.0,
        modality_scores={},
        fusion="late",
        fusion_weights=None,
        segments=[],
        faces=[],
        warnings=[],
    )
    data = json.loads(pred.to_json())
    assert data["fake_probability"] is None and data["voice_emotions"]["happy"] is None
    assert data["consistency"] == 1.0
    json.dumps(pred.to_dict(), allow_nan=False)


# --- 9. rotation ---------------------------------------------------------------------------------


def test_rotated_phone_clip_is_turned_upright(tmp_path):
    path = mf.face_video(tmp_path / "portrait.mp4", seconds=1.0, size=(320, 240), rotation=90)
    clip = decode.load_video(path, num_frames=2)
    assert clip.frames.shape[1:3] == (240, 320)
    shown = round(float(clip.frame_times[0]) * 25)
    upright = mf.face_frames(shown + 1, (320, 240))[shown]
    assert np.abs(clip.frames[0].astype(int) - upright.astype(int)).mean() < 8
    pred = Detector.starter().predict(str(path), num_frames=4)
    assert len(pred.faces) == 4


# --- 11. odd arrays and damaged files ------------------------------------------------------------


@pytest.mark.parametrize(
    "array",
    [
        np.array([["a", "b"], ["c", "d"]]),
        np.empty((4, 4, 3), dtype=object),
        np.zeros((0, 0, 3), np.uint8),
        np.zeros(0, np.float32),
    ],
    ids=["str", "object", "empty-image", "empty-audio"],
)
def test_odd_arrays_raise_typed_errors(array):
    for load in (decode.detect_media_kind, decode.load_image, decode.load_audio):
        with pytest.raises((UnsupportedMediaError, CorruptMediaError)):
            load(array)


def test_damaged_mp3_warns_in_the_prediction(tmp_path, face_jpg):
    path = mf.damaged_mp3(tmp_path / "v.mp3")
    decoded = decode.read_audio(path)
    assert any("damaged" in note for note in decoded.warnings)
    with pytest.warns(decode.MediaWarning, match="damaged"):
        decode.load_audio(path)
    torch.manual_seed(0)
    pred = Detector(**TINY_ARCH).predict(image=str(face_jpg), audio=str(path))
    assert any("damaged" in note for note in pred.warnings)


# --- 10. S3 and the training memory guard ---------------------------------------------------------


def test_cli_reads_one_s3_object_and_skips_dotdot_keys(s3_bucket, model_dir, tmp_path):
    clip = mf.face_video(tmp_path / "a.mp4", seconds=1.0, size=(160, 120)).read_bytes()
    client = s3_bucket.server.client()
    client.put_object(Bucket=s3_bucket.name, Key="in/a.mp4", Body=clip)
    client.put_object(Bucket=s3_bucket.name, Key="in/x/../b.mp4", Body=clip)
    one, records, stderr, _ = run_predict_cli(
        s3_bucket.uri("in/a.mp4"),
        "--model",
        str(model_dir),
        "--num-frames",
        "2",
        "--endpoint-url",
        s3_bucket.endpoint_url,
        "--no-progress",
    )
    assert one == 0, stderr
    assert [r["source"] for r in records] == [s3_bucket.uri("in/a.mp4")]
    status, records, stderr, _ = run_predict_cli(
        s3_bucket.uri("in/"),
        "--model",
        str(model_dir),
        "--num-frames",
        "2",
        "--endpoint-url",
        s3_bucket.endpoint_url,
        "--no-progress",
    )
    assert status == 0, stderr
    assert [r["source"] for r in records] == [s3_bucket.uri("in/a.mp4")]
    assert "in/x/../b.mp4" in stderr and "skipping" in stderr


def test_memory_budget_above_the_machine_is_clamped(caplog):
    from mmdeepfake.train.memory import MemoryGuard, machine_memory

    with caplog.at_level(logging.WARNING, logger="mmdeepfake.train"):
        guard = MemoryGuard(8, budget_bytes=machine_memory() * 4, rss_fn=lambda: 0)
    assert guard.limit_bytes == machine_memory()
    assert "more than this machine" in caplog.text


def test_memory_guard_acts_on_peaks_between_steps():
    from mmdeepfake.train.memory import MemoryGuard

    level = {"rss": 100}
    guard = MemoryGuard(8, budget_bytes=1000, rss_fn=lambda: level["rss"], sample_interval=0.01)
    assert guard.check(1) == 8
    level["rss"] = 950  # a long recording decoded between two steps
    deadline = time.monotonic() + 5
    while guard._peak_between < 950 and time.monotonic() < deadline:
        time.sleep(0.01)
    level["rss"] = 100  # freed again by the time the step ends
    assert guard.check(2) == 4
    assert guard.samples[-1].rss_bytes == 950
