"""The synthetic dataset: drawing, determinism, layout, videos, S3 output, CLI, and the
property the `consistency` variant exists for: one modality alone cannot tell real from fake."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mmdeepfake.cli.synth import main as synth_main
from mmdeepfake.data.layout import count_pairs, pair_samples, scan_dataset
from mmdeepfake.data.storage import open_storage
from mmdeepfake.data.synth import (
    FACE_ARTEFACTS,
    VOICE_ARTEFACTS,
    ClipSpec,
    generate_dataset,
    make_clip,
    plan_clips,
    render_clip,
)
from mmdeepfake.data.synth_face import EXPRESSIONS, draw_face
from mmdeepfake.data.synth_voice import PROSODY, synth_voice
from mmdeepfake.errors import ConfigError
from mmdeepfake.labels import EMOTION_INDEX, EMOTIONS

SMALL = ["--clips", "6", "--splits", "0.34,0.33,0.33", "--frames-per-clip", "2", "--no-progress"]


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_every_emotion_has_a_face_and_a_voice():
    assert set(EXPRESSIONS) == set(EMOTIONS) == set(PROSODY)
    face = draw_face("happy", np.random.default_rng(0))
    assert face.shape == (224, 224, 3) and face.dtype == np.uint8
    assert face.std() > 20  # a picture, not a flat colour
    wave = synth_voice(EMOTION_INDEX["angry"], np.random.default_rng(0))
    assert wave.dtype == np.float32 and 2.0 * 16000 <= len(wave) <= 3.0 * 16000
    assert 0.01 < float(np.sqrt(np.mean(wave**2))) and np.abs(wave).max() < 1
    with pytest.raises(ValueError, match="unknown emotion"):
        draw_face("bored", np.random.default_rng(0))
    with pytest.raises(ValueError, match="unknown emotion"):
        synth_voice("bored", np.random.default_rng(0))


def test_voice_prosody_follows_emotion():
    # Over a few speakers: angry is louder and brighter than sad.
    def stats(emotion):
        rms, zcr = [], []
        for i in range(6):
            wave = synth_voice(emotion, np.random.default_rng([i, 9]))
            rms.append(np.sqrt(np.mean(wave**2)))
            zcr.append(np.mean(np.abs(np.diff(np.sign(wave))) > 0))
        return np.mean(rms), np.mean(zcr)

    angry, sad = stats("angry"), stats("sad")
    assert angry[0] > 1.5 * sad[0] and angry[1] > sad[1]


@pytest.mark.slow
def test_same_seed_same_bytes_and_layout(tmp_path):
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        assert synth_main(["--out", str(tmp_path / name), "--seed", str(seed), *SMALL]) == 0
    a, b, c = (_files(tmp_path / name) for name in "abc")
    assert a == b
    media = {k: v for k, v in a.items() if k.startswith(("frames/", "audio/"))}
    other = {v for k, v in c.items() if k.startswith(("frames/", "audio/"))}
    assert len(other) == len(media) and not set(media.values()) & other
    index = scan_dataset(open_storage(tmp_path / "a"), "")
    for split in ("train", "validate", "test"):
        for label in ("real", "fake"):
            assert index.counts()[split][label] == {"frames": 2, "audio": 1, "videos": 0}
    clips = list(csv.DictReader(io.StringIO(a["labels/clips.csv"].decode())))
    assert len(clips) == 6
    for clip in clips:
        agree = clip["face_emotion"] == clip["voice_emotion"]
        assert agree == (clip["label"] == "real")  # consistency variant: fake = mismatch
        frame = f"frames/{clip['split']}/{clip['label']}/{clip['clip_id']}_01.png"
        audio = f"audio/{clip['split']}/{clip['label']}/{clip['clip_id']}.wav"
        assert index.emotion_of(frame) == EMOTION_INDEX[clip["face_emotion"]]
        assert index.emotion_of(audio) == EMOTION_INDEX[clip["voice_emotion"]]
    samples = pair_samples(index, "train", seed=0)
    assert count_pairs(samples) == (4, 0)  # every frame pairs with its own clip's voice


@pytest.mark.slow
def test_videos_are_decodable_with_audio(tmp_path):
    import av

    storage = open_storage(tmp_path)
    generate_dataset(
        storage, 2, seed=1, videos=True, frames_per_clip=1, splits=(1, 0, 0), seconds=1.0
    )
    videos = storage.list("videos/")
    assert len(videos) == 2
    with av.open(str(tmp_path / videos[0])) as container:
        assert container.streams.video[0].codec_context.name == "h264"
        assert container.streams.audio[0].codec_context.name == "aac"
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == 15 and frames[0].shape == (224, 224, 3)
    with av.open(str(tmp_path / videos[0])) as container:
        audio = np.concatenate([f.to_ndarray().ravel() for f in container.decode(audio=0)])
    assert audio.size >= 16000 * 0.9 and np.abs(audio).max() > 0.05
    # A single demo clip: face and voice chosen by name; same seed, same pictures and sound.
    # (Decoded content is compared: one loaded run in five wrote different container bytes.)
    path = make_clip(tmp_path / "demo" / "fake.mp4", "happy", "angry", seed=3, seconds=0.6)
    again = make_clip(tmp_path / "again.mp4", "happy", "angry", seed=3, seconds=0.6)
    # Within a grey level per pixel and 1e-3 per sample; another seed differs by far more.
    for media, tolerance in (("video", 1.0), ("audio", 1e-3)):
        first, second = (_decoded(clip, media) for clip in (path, again))
        assert first.shape == second.shape
        assert np.abs(first.astype(np.float64) - second).mean() < tolerance
    other = make_clip(tmp_path / "other.mp4", "happy", "angry", seed=4, seconds=0.6)
    assert (
        np.abs(_decoded(path, "video").astype(np.float64) - _decoded(other, "video")).mean() > 1.0
    )
    with av.open(str(path)) as container:
        assert container.streams.audio and container.duration / 1e6 == pytest.approx(0.6, abs=0.15)
    with pytest.raises(ConfigError, match="unknown emotion"):
        make_clip(tmp_path / "x.mp4", "happy", "bored")


@pytest.mark.slow
def test_mixed_variant_artefacts():
    specs = plan_clips(300, 2, "mixed")
    real = [s for s in specs if s.label == 0]
    fake = [s for s in specs if s.label == 1]
    assert all(
        s.face_emotion == s.voice_emotion and not s.face_artefact and not s.voice_artefact
        for s in real
    )
    kinds = {
        (s.face_emotion != s.voice_emotion, bool(s.face_artefact), bool(s.voice_artefact))
        for s in fake
    }
    assert {(True, False, False), (False, True, False), (False, False, True)} <= kinds
    assert all(mismatch or face or voice for mismatch, face, voice in kinds)
    # An artefact changes the manipulated modality and leaves the other one alone.
    plain = ClipSpec(0, "c0", "train", 1, 1, 1)
    base = render_clip(plain, 4, frames_per_clip=1, seconds=1.0)
    for artefact in FACE_ARTEFACTS:
        clip = render_clip(
            ClipSpec(0, "c0", "train", 1, 1, 1, face_artefact=artefact),
            4,
            frames_per_clip=1,
            seconds=1.0,
        )
        assert np.abs(clip.frames.astype(int) - base.frames).mean() > 0.5, artefact
        assert np.array_equal(clip.wave, base.wave)
    for artefact in VOICE_ARTEFACTS:
        clip = render_clip(
            ClipSpec(0, "c0", "train", 1, 1, 1, voice_artefact=artefact),
            4,
            frames_per_clip=1,
            seconds=1.0,
        )
        assert not np.array_equal(clip.wave, base.wave), artefact
        assert np.array_equal(clip.frames, base.frames)


@pytest.mark.slow
def test_cli_writes_dataset_to_s3(s3_bucket):
    code = synth_main(
        [
            "--out",
            s3_bucket.uri("dataset/"),
            "--endpoint-url",
            s3_bucket.endpoint_url,
            "--seed",
            "3",
            *SMALL,
        ]
    )
    assert code == 0
    keys = s3_bucket.keys()
    assert "dataset/labels/emotions.csv" in keys and "dataset/labels/clips.csv" in keys
    assert sum(k.startswith("dataset/frames/") for k in keys) == 12
    assert sum(k.startswith("dataset/audio/") for k in keys) == 6
    storage = open_storage(s3_bucket.uri(), endpoint_url=s3_bucket.endpoint_url)
    index = scan_dataset(storage, "dataset/")
    assert index.splits() == ["train", "validate", "test"]


@pytest.mark.slow
def test_cli_bad_arguments_exit_nonzero_without_traceback(capsys, tmp_path):
    out = str(tmp_path / "d")
    assert synth_main(["--out", out, "--clips", "0"]) == 2
    assert "--clips: must be at least 1" in capsys.readouterr().err
    assert synth_main(["--out", out, "--splits", "0.5,0.6,0.1"]) == 2
    assert "sum to 1" in capsys.readouterr().err
    assert synth_main(["--out", out, "--variant", "weird"]) == 2
    assert synth_main(["--out", "gs://b/x", "--clips", "10"]) == 2
    err = capsys.readouterr().err
    assert "error: unsupported storage address" in err and "Traceback" not in err
    # Through the real interpreter: an unreachable S3 endpoint is one clear line.
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mmdeepfake.cli.synth",
            "--out",
            "s3://b/d/",
            *SMALL,
            "--endpoint-url",
            "http://127.0.0.1:9",
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={
            "AWS_ACCESS_KEY_ID": "x",
            "AWS_SECRET_ACCESS_KEY": "x",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_CONFIG_FILE": "/dev/null",
            "AWS_MAX_ATTEMPTS": "1",
            "PATH": "/usr/bin:/bin",
        },
    )
    assert result.returncode == 2
    assert result.stderr.startswith("error: cannot reach http://127.0.0.1:9")
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_face_detector_finds_synthetic_faces(tmp_path):
    # The frames must work with the real inference path: MTCNN finds the drawn faces, in
    # rendered frames (with mixed-variant artefacts) and in decoded synthetic videos.
    from mmdeepfake.media.decode import load_video
    from mmdeepfake.media.faces import FaceDetector

    specs = plan_clips(14, 8, "mixed", splits=(1, 0, 0))
    frames = [render_clip(s, 8, frames_per_clip=1, seconds=1.0).frames[0] for s in specs]
    video = load_video(
        str(make_clip(tmp_path / "c.mp4", "sad", "happy", seed=2, seconds=1.0)), num_frames=6
    )
    boxes = FaceDetector.shared().detect([*frames, *video.frames], track=False)
    found = [b for b in boxes if b is not None]
    assert len(found) >= 0.9 * len(boxes)
    for box in found:  # a face-sized box near the middle of the 224 px frame
        assert 60 < box.x2 - box.x1 < 180 and 40 < (box.x1 + box.x2) / 2 < 184


def _decoded(path: Path, media: str) -> np.ndarray:
    """Every frame of one stream of a clip, as one array (RGB pixels or audio samples)."""
    import av

    with av.open(str(path)) as container:
        if media == "video":
            return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
        return np.concatenate([f.to_ndarray().ravel() for f in container.decode(audio=0)])
