"""Scanning the dataset layout and pairing faces with voices."""

from __future__ import annotations

import logging

import pytest

from mmdeepfake.data.layout import (
    DatasetIndex,
    clip_id,
    count_pairs,
    pair_samples,
    parse_emotions_csv,
    scan_dataset,
)
from mmdeepfake.data.storage import open_storage
from mmdeepfake.errors import DatasetError
from mmdeepfake.labels import EMOTION_INDEX


def _make(storage, keys, emotions=None, prefix="dataset/"):
    for key in keys:
        storage.write_bytes(prefix + key, b"x")
    if emotions is not None:
        storage.write_text(prefix + "labels/emotions.csv", emotions)


def test_clip_id():
    assert clip_id("frames/train/fake/c0003_02.png") == "c0003"
    assert clip_id("audio/train/fake/c0003.wav") == "c0003"
    assert clip_id("x/id10_0001_05.jpg") == "id10_0001"
    assert clip_id("x/speaker_a.wav") == "speaker_a"


def test_scan_counts_labels_and_ignored(tmp_path, caplog):
    storage = open_storage(tmp_path)
    _make(
        storage,
        [
            "frames/train/real/c1_00.png",
            "frames/train/real/c1_01.jpg",
            "frames/train/fake/c2_00.png",
            "audio/train/real/c1.wav",
            "audio/train/fake/c2.flac",
            "videos/test/fake/c9.mp4",
            "frames/train/real/notes.txt",
            "frames/holdout/real/c5.png",
        ],
        "key,emotion\nc1,happy\nframes/train/fake/c2_00.png,Angry\naudio/train/fake/c2.flac,0\n",
    )
    with caplog.at_level(logging.WARNING):
        index = scan_dataset(storage, "dataset")
    assert "2 files" in caplog.text and "ignored" in caplog.text
    counts = index.counts()
    assert counts["train"]["real"] == {"frames": 2, "audio": 1, "videos": 0}
    assert counts["train"]["fake"] == {"frames": 1, "audio": 1, "videos": 0}
    assert counts["test"]["fake"]["videos"] == 1
    assert index.splits() == ["train", "test"]
    assert index.keys("frames", "train", "real") == [
        "dataset/frames/train/real/c1_00.png",
        "dataset/frames/train/real/c1_01.jpg",
    ]
    # A clip-id row labels both modalities; a file row labels one file.
    assert index.emotion_of("dataset/frames/train/real/c1_01.jpg") == EMOTION_INDEX["happy"]
    assert index.emotion_of("dataset/audio/train/real/c1.wav") == EMOTION_INDEX["happy"]
    assert index.emotion_of("dataset/frames/train/fake/c2_00.png") == EMOTION_INDEX["angry"]
    assert index.emotion_of("dataset/audio/train/fake/c2.flac") == EMOTION_INDEX["neutral"]
    assert index.emotion_of("dataset/videos/test/fake/c9.mp4") == -1
    assert "train: real: 2 frames, 1 audio, 0 videos" in index.summary()


def test_missing_prefix_names_prefix_and_layout(tmp_path):
    storage = open_storage(tmp_path)
    with pytest.raises(DatasetError) as info:
        scan_dataset(storage, "nowhere/")
    message = str(info.value)
    assert str(tmp_path / "nowhere") in message
    assert "frames/{train,validate,test}/{real,fake}" in message
    _make(storage, ["readme.txt"], prefix="nowhere/")
    with pytest.raises(DatasetError, match="1 files, none in the layout"):
        scan_dataset(storage, "nowhere/")


def test_bad_emotions_csv():
    with pytest.raises(DatasetError, match="header 'key,emotion'"):
        parse_emotions_csv("file,label\n")
    with pytest.raises(DatasetError, match="line 3: unknown emotion 'bored'"):
        parse_emotions_csv("key,emotion\na,happy\nb,bored\n")
    assert parse_emotions_csv("key,emotion\n\na, SAD \n") == {"a": EMOTION_INDEX["sad"]}


def _index(tmp_path, keys) -> DatasetIndex:
    storage = open_storage(tmp_path)
    _make(storage, keys, prefix="")
    return scan_dataset(storage, "")


def test_pairing_true_pairs_and_random_within_split_and_label(tmp_path):
    keys = []
    for split in ("train", "test"):
        for label in ("real", "fake"):
            for c in range(4):
                clip = f"{split}{label}{c}"
                keys += [f"frames/{split}/{label}/{clip}_{f:02d}.png" for f in range(3)]
                if c < 2:  # only half of the clips have their own recording
                    keys.append(f"audio/{split}/{label}/{clip}.wav")
    index = _index(tmp_path, keys)
    samples = pair_samples(index, "train", seed=3)
    assert len(samples) == 2 * 4 * 3  # every frame of the split is a sample
    assert count_pairs(samples) == (12, 12)
    for sample in samples:
        image_label = sample.image_key.split("/")[2]
        assert sample.audio_key.split("/")[1:3] == ["train", image_label]
        assert sample.label == ("real", "fake").index(image_label)
        assert sample.true_pair == (clip_id(sample.image_key) == clip_id(sample.audio_key))
        if clip_id(sample.image_key)[-1] in "01":
            assert sample.true_pair
    assert pair_samples(index, "train", seed=3) == samples  # deterministic
    other = [s.audio_key for s in pair_samples(index, "train", seed=4) if not s.true_pair]
    random_choices = [s.audio_key for s in samples if not s.true_pair]
    assert other != random_choices  # the seed drives the random pairing


def test_pairing_errors(tmp_path):
    index = _index(tmp_path, ["frames/train/real/a_00.png", "audio/train/real/a.wav"])
    with pytest.raises(DatasetError, match="split 'validate'.*has no face images"):
        pair_samples(index, "validate", seed=0)
    with pytest.raises(DatasetError, match="unknown split"):
        pair_samples(index, "dev", seed=0)
    index = _index(tmp_path / "b", ["frames/train/fake/a_00.png", "audio/train/real/a.wav"])
    with pytest.raises(DatasetError, match="audio/train/fake/ has no audio"):
        pair_samples(index, "train", seed=0)
