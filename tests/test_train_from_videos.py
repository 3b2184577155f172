"""Training straight from ``videos/``: each video decoded on the fly as ``predict`` decodes it.

Six real talking-face videos (``mmdeepfake.testing.media.face_video``) in the ``folders``
format, with official splits and per-modality labels, are prepared once with
``mmdeepfake prepare``; the same videos are then laid out under ``videos/`` with the prepared
``labels/clips.csv``, so every clip exists both ways. The samples decoded from a video are
compared with those the training loader reads from the prepared files; a dataset holding only
videos trains one epoch from a folder and from the local S3 server, a broken video among them.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from mmdeepfake.config import PreprocessConfig
from mmdeepfake.data.clip_labels import read_clip_labels
from mmdeepfake.data.layout import PairedSample, clip_id, scan_dataset
from mmdeepfake.data.shared_reads import SharedReads
from mmdeepfake.data.storage import open_storage
from mmdeepfake.data.streaming import SkippedSample, StreamingPairDataset
from mmdeepfake.data.video_samples import (
    VideoSample,
    load_video_sample,
    mix_items,
    split_samples,
)
from mmdeepfake.media.decode import load_image
from mmdeepfake.media.features import faces_to_tensor
from mmdeepfake.prepare.engine import prepare_dataset
from mmdeepfake.testing.datasets import BROKEN_VIDEO
from mmdeepfake.train.config import TrainConfig

#: path in the folders tree: (split, visual_fake, audio_fake) as its labels.csv gives them
CLIPS = {
    "real/id01/take.mp4": ("train", "", ""),
    "real/id02/take.mp4": ("train", "", ""),
    "fake/id03/take.mp4": ("train", "1", "0"),
    "fake/id04/take.mp4": ("train", "0", "1"),
    "real/id05/take.mp4": ("validate", "", ""),
    "fake/id06/take.mp4": ("validate", "1", "1"),
}
#: Frames predict samples a video at; prepare takes as many, so both give the same frames.
FRAMES = PreprocessConfig().num_frames
BROKEN_KEY = "videos/train/fake/broken-upload.mp4"
#: Mean absolute difference (normalised units) allowed between a face decoded from the video
#: and prepare's JPEG of it: JPEG loss, measured 0.015. Framed with a margin of 0.1 or 0.6
#: instead of 0.25, the same frames differ by 0.56 to 0.90.
FACE_TOLERANCE = 0.05


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """The folders tree: six 1 s videos (a face in every frame, a voice) and a labels.csv."""
    from mmdeepfake.testing.media import face_video

    root = tmp_path_factory.mktemp("source")
    rows = ["path,label,visual_fake,audio_fake,split"]
    for path, (split, visual, audio) in CLIPS.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        face_video(root / path, seconds=1.0, size=(160, 120))
        rows.append(f"{path},{path.split('/')[0]},{visual},{audio},{split}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return root


@pytest.fixture(scope="module")
def prepared(source, tmp_path_factory) -> Path:
    """The tree prepared into the training layout, FRAMES face crops per clip."""
    dest = tmp_path_factory.mktemp("prepared")
    summary = prepare_dataset(
        str(source), str(dest), "folders", frames_per_clip=FRAMES, progress=False
    )
    assert summary.written == len(CLIPS)
    return dest


def _clip_rows(prepared: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO((prepared / "labels/clips.csv").read_text())))


def _write_videos(root: Path, source: Path, prepared: Path) -> dict[str, str]:
    """Each prepared clip's source video at videos/{split}/{label}/<clip>.mp4 under ``root``,
    with the prepared clips.csv; returns {clip id: video key}."""
    keys = {}
    for row in _clip_rows(prepared):
        key = f"videos/{row['split']}/{row['label']}/{row['clip_id']}.mp4"
        (root / key).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / row["source"], root / key)
        keys[row["clip_id"]] = key
    (root / "labels").mkdir(exist_ok=True)
    shutil.copyfile(prepared / "labels/clips.csv", root / "labels/clips.csv")
    return keys


@pytest.fixture(scope="module")
def videos_only(source, prepared, tmp_path_factory) -> Path:
    """The same clips as videos only (no frames/, no audio/), plus one broken upload."""
    root = tmp_path_factory.mktemp("videos-only")
    _write_videos(root, source, prepared)
    (root / BROKEN_KEY).write_bytes(BROKEN_VIDEO)
    return root


def _frame_number(key: str) -> int:
    return int(Path(key).stem.rsplit("_", 1)[1])


# --- which clips are read from videos --------------------------------------------------------


def test_a_dataset_of_videos_gives_one_true_pair_per_video_with_its_clip_labels(videos_only):
    storage = open_storage(videos_only)
    index = scan_dataset(storage, "")
    labels = read_clip_labels(storage, index)
    samples = split_samples(index, "train", 0, clip_labels=labels)
    assert all(isinstance(s, VideoSample) and s.true_pair for s in samples)
    assert {s.video_key for s in samples} == set(index.keys("videos", "train", "real")) | set(
        index.keys("videos", "train", "fake")
    )
    targets = {clip_id(s.video_key): (s.label, s.image_label, s.audio_label) for s in samples}
    by_source = {row["clip_id"]: row["source"] for row in _clip_rows(videos_only)}
    expected = {"real/id01/take.mp4": (0, 0, 0), "real/id02/take.mp4": (0, 0, 0)}
    expected |= {"fake/id03/take.mp4": (1, 1, 0), "fake/id04/take.mp4": (1, 0, 1)}
    assert {by_source.get(c, c): t for c, t in targets.items()} == {
        **expected,
        "broken-upload": (1, -1, -1),  # no row in clips.csv: both heads learn the clip's label
    }


def test_a_mixed_dataset_reads_extracted_clips_from_their_files(source, prepared, tmp_path):
    root = tmp_path / "mixed"
    shutil.copytree(prepared, root)
    keys = _write_videos(root, source, prepared)  # every clip also as a video
    extra = "videos/train/real/only-a-video.mp4"
    shutil.copyfile(source / "real/id01/take.mp4", root / extra)
    (root / "labels/emotions.csv").write_text("key,emotion\nonly-a-video,happy\n")
    storage = open_storage(root)
    index = scan_dataset(storage, "")
    samples = split_samples(index, "train", 0)
    videos = [s for s in samples if isinstance(s, VideoSample)]
    assert [s.video_key for s in videos] == [extra]
    assert (videos[0].face_emotion, videos[0].voice_emotion) == (1, 1)  # happy, by clip id
    pairs = [s for s in samples if isinstance(s, PairedSample)]
    assert len(pairs) == 4 * FRAMES and all(s.true_pair for s in pairs)

    read: list[str] = []

    def reader(key: str) -> bytes:
        read.append(key)
        return storage.read_bytes(key)

    dataset = StreamingPairDataset(storage, samples, shuffle=True, reader=reader)
    items = list(dataset)
    assert len(items) == len(dataset) == 5 * FRAMES
    assert {k for k in read if k.startswith("videos/")} == {extra}
    assert not set(keys.values()) & {item.image_key for item in items}
    places = [i for i, item in enumerate(items) if item.image_key == extra]
    assert len(places) == FRAMES
    assert places[-1] - places[0] > 2 * FRAMES  # mixed in, not one block of the video's frames


# --- the decoded samples are the extracted ones ---------------------------------------------


def test_samples_decoded_from_a_video_equal_those_read_from_its_prepared_files(
    videos_only, prepared
):
    """Faces: predict's crops of the video's frames, the ones prepare wrote as JPEGs (read back
    with the model's normalisation); voices: the loader's window of the prepared WAV."""
    video_storage, prepared_storage = open_storage(videos_only), open_storage(prepared)
    video_index = scan_dataset(video_storage, "")
    pairs = split_samples(scan_dataset(prepared_storage, ""), "train", 0)
    from_files = StreamingPairDataset(prepared_storage, pairs)
    compared = 0
    for sample in split_samples(video_index, "train", 0):
        if sample.video_key == BROKEN_KEY:
            continue
        decoded = load_video_sample(sample, video_storage.read_bytes)
        clip = clip_id(sample.video_key)
        mine = sorted(
            (p for p in pairs if clip_id(p.image_key) == clip),
            key=lambda p: _frame_number(p.image_key),
        )
        assert len(decoded) == len(mine) == FRAMES
        for got, pair in zip(decoded, mine):
            # What the training loader makes of the files (its recording read on its own).
            voice = SharedReads([pair.audio_key], from_files._load_voice, capacity=0)
            want = from_files._load_pair(pair, voice)
            assert (got.label, got.image_label, got.audio_label) == (
                want.label,
                want.image_label,
                want.audio_label,
            )
            crop = faces_to_tensor(load_image(prepared_storage.read_bytes(pair.image_key)))[0]
            assert got.faces.shape == crop.shape == want.faces.shape == (3, 224, 224)
            assert (got.faces - crop).abs().mean() < FACE_TOLERANCE
            # 16 kHz from the same AAC track; the prepared WAV only adds 16-bit rounding.
            assert got.wave.shape == want.wave.shape
            assert torch.allclose(got.wave, want.wave, atol=2e-4)
            assert got.wave.abs().max() > 0.05  # a voice, not silence
        compared += 1
    assert compared == 4

    # The tolerance tells framings apart: a wider or tighter crop of the same frames is far off.
    for margin in (0.1, 0.6):
        framed = load_video_sample(sample, video_storage.read_bytes, face_margin=margin)
        gaps = [float((f.faces - d.faces).abs().mean()) for f, d in zip(framed, decoded)]
        assert min(gaps) > 5 * FACE_TOLERANCE


def test_a_broken_video_is_one_skipped_sample(videos_only):
    storage = open_storage(videos_only)
    sample = VideoSample(video_key=BROKEN_KEY, label=1, face_emotion=-1, voice_emotion=-1)
    (skipped,) = load_video_sample(sample, storage.read_bytes)
    assert isinstance(skipped, SkippedSample) and skipped.key == BROKEN_KEY
    assert skipped.reason.startswith("CorruptMediaError")
    gone = VideoSample(
        video_key="videos/train/fake/gone.mp4", label=1, face_emotion=-1, voice_emotion=-1
    )
    (missing,) = load_video_sample(gone, storage.read_bytes)
    assert missing.reason.startswith("KeyNotFoundError")


def test_mixing_spreads_each_videos_frames_and_keeps_every_item():
    items = [(video, frame) for video in range(6) for frame in range(16)]
    mixed = list(mix_items(items, 64, np.random.default_rng(0)))
    assert sorted(mixed) == items
    assert mixed == list(mix_items(items, 64, np.random.default_rng(0)))
    first_batch = {video for video, _ in mixed[:8]}
    assert len(first_batch) >= 3  # unmixed, the first 8 items all come from video 0


# --- training ------------------------------------------------------------------------------


#: Frames the trained model samples a video at (its ``num_frames``), so each video gives 4.
TRAIN_FRAMES = 4


def _config(**values) -> TrainConfig:
    options = {"epochs": 1, "batch_size": 8, "seed": 0, "plots": False}
    model = {"model": {"num_frames": TRAIN_FRAMES}}
    return TrainConfig.from_sources("tiny", {**options, **model, **values})


@pytest.mark.slow
def test_one_epoch_from_a_folder_of_videos_counts_the_broken_one(videos_only, tmp_path, caplog):
    from mmdeepfake.train.trainer import train

    caplog.set_level(logging.INFO, logger="mmdeepfake")
    out = tmp_path / "outputs"
    result = train(_config(data_dir=str(videos_only), output=str(out), plots=True), progress=False)
    (run,) = [p for p in out.iterdir() if p.is_dir()]
    summary = json.loads((run / "logs/summary.json").read_text())
    assert summary["skipped_samples"] == 1
    assert f"skipped a bad train sample: {BROKEN_KEY} (CorruptMediaError" in caplog.text
    assert result.history[-1]["skipped_samples"] == 1
    rows = list(csv.DictReader(io.StringIO((run / "intermediate/val_predictions.csv").read_text())))
    assert len(rows) == 2 * TRAIN_FRAMES  # every frame of both videos, as the model samples
    index = scan_dataset(open_storage(videos_only), "")
    validation_videos = index.keys("videos", "validate", "real") + index.keys(
        "videos", "validate", "fake"
    )
    assert sorted({r["image_key"] for r in rows}) == sorted(validation_videos)
    assert (run / "models/best/model.safetensors").is_file()
    assert (run / "plots/03_image_samples.png").is_file()
    assert "clips read from videos/" in caplog.text


@pytest.mark.slow
def test_one_epoch_from_videos_on_s3(videos_only, s3_bucket):
    from mmdeepfake.train.trainer import train

    client = s3_bucket.server.client()
    for path in videos_only.rglob("*"):
        if path.is_file():
            key = f"dataset/{path.relative_to(videos_only).as_posix()}"
            client.put_object(Bucket=s3_bucket.name, Key=key, Body=path.read_bytes())
    result = train(
        _config(bucket=s3_bucket.name, endpoint_url=s3_bucket.endpoint_url), progress=False
    )
    assert result.history[-1]["skipped_samples"] == 1
    run = next(k.split("/")[1] for k in s3_bucket.keys("outputs/"))
    summary = json.loads(
        client.get_object(Bucket=s3_bucket.name, Key=f"outputs/{run}/logs/summary.json")[
            "Body"
        ].read()
    )
    assert summary["skipped_samples"] == 1
    assert f"outputs/{run}/models/best/model.safetensors" in s3_bucket.keys("outputs/")
