"""`mmdeepfake prepare` and the ``folders`` format, on real synthetic talking-face videos.

A small ``folders`` tree (real/ and fake/ person folders, a labels.csv with official splits and
per-modality labels, a clip without audio and a broken file) is prepared to a folder and to the
local S3 server, then read back through the training layout's own reader.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
import soundfile
from PIL import Image

from mmdeepfake.data.layout import pair_samples, scan_dataset
from mmdeepfake.data.storage import open_storage
from mmdeepfake.errors import ConfigError, DatasetError
from mmdeepfake.prepare.clips import CLIP_ID_PATTERN, list_clips, read_dataset
from mmdeepfake.prepare.engine import prepare_dataset
from mmdeepfake.prepare.formats.folders import folder_clip_ids
from mmdeepfake.prepare.manifest import CLIPS_COLUMNS

FRAMES = 3
GOOD = {  # path: (split, category, visual_fake, audio_fake) as labels.csv gives them
    "real/id01/take_1.mp4": ("train", "", "", ""),
    "real/id02/take_1.mp4": ("validate", "", "", ""),
    "real/id03/take_1.mp4": ("test", "", "", ""),
    "fake/id01/take_1.mp4": ("train", "FakeVideo-FakeAudio", "1", "1"),
    "fake/id02/take_2.mp4": ("validate", "FakeVideo-RealAudio", "1", "0"),
    "fake/id03/take_3.mp4": ("test", "RealVideo-FakeAudio", "0", "1"),
}
SILENT_VIDEO = "fake/id04/no_voice.mp4"
BROKEN = "fake/broken.mp4"


def _labels_csv() -> str:
    rows = ["path,label,category,visual_fake,audio_fake,split"]
    for path, (split, category, visual, audio) in GOOD.items():
        rows.append(f"{path},{path.split('/')[0]},{category},{visual},{audio},{split}")
    return "\n".join(rows) + "\n"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """The folders tree: six talking-face clips, one without audio, one broken file."""
    from mmdeepfake.testing.media import face_video

    root = tmp_path_factory.mktemp("folders")
    for path in [*GOOD, SILENT_VIDEO]:
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        face_video(root / path, seconds=1.0, size=(160, 120), with_audio=path != SILENT_VIDEO)
    (root / BROKEN).write_bytes(b"\x00\x00\x00\x18ftypmp42 the rest of it was lost")
    (root / "labels.csv").write_text(_labels_csv())
    return root


def _files(root: Path) -> dict[str, int]:
    """Every file under ``root`` and its modification time (ns)."""
    return {
        p.relative_to(root).as_posix(): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()
    }


# --- the folders format ---------------------------------------------------------------------


def test_folder_clip_ids_are_layout_safe_unique_and_never_look_like_frames():
    paths = ["real/a_b.mp4", "real/a-b.mp4", "real/a b.mov", "fake/x_2.mp4", "real/id7/x.mp4"]
    ids = folder_clip_ids(paths)
    assert len(set(ids.values())) == len(paths)
    assert all(CLIP_ID_PATTERN.match(i) for i in ids.values())
    assert ids["fake/x_2.mp4"] == "fake-x-2"  # '_2' would be read as frame 2 of 'fake-x'
    assert ids["real/id7/x.mp4"] == "real-id7-x"
    # The three that share the slug 'real-a-b' all carry a hash of their own path.
    shared = [ids[p] for p in paths[:3]]
    assert all(i.startswith("real-a-b-") and len(i) == len("real-a-b-") + 10 for i in shared)


def test_folders_labels_identities_and_csv_overrides(tmp_path):
    for path in ["real/p1/a.mp4", "real/b.mp4", "fake/p2/deep/c.mkv", "fake/d.mp4", "other.mp4"]:
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_bytes(b"")
    (tmp_path / "fake/notes.txt").write_text("not a video")
    (tmp_path / "labels.csv").write_text(
        "path,label,identity,visual_fake,audio_fake,split,\n"
        "fake/d.mp4,fake,p9,yes,no,test,extra cell\n"
        "other.mp4,real,,,,,\n"
    )
    clips = {c.source: c for c in list_clips("folders", open_storage(tmp_path))}
    assert sorted(clips) == [
        "fake/d.mp4",
        "fake/p2/deep/c.mkv",
        "other.mp4",
        "real/b.mp4",
        "real/p1/a.mp4",
    ]
    assert clips["real/p1/a.mp4"].identity == "p1"  # the person folder
    assert clips["real/b.mp4"].identity is None  # directly under real/: unknown
    assert clips["fake/p2/deep/c.mkv"].identity == "p2"
    real = clips["real/b.mp4"]
    assert (real.label, real.category, real.visual_fake, real.audio_fake) == (
        "real",
        "real",
        False,
        False,
    )
    fake = clips["fake/p2/deep/c.mkv"]
    assert (fake.label, fake.visual_fake, fake.audio_fake, fake.split) == ("fake", None, None, None)
    d = clips["fake/d.mp4"]
    assert (d.identity, d.visual_fake, d.audio_fake, d.split) == ("p9", True, False, "test")
    assert clips["other.mp4"].label == "real"  # named by labels.csv only


@pytest.mark.parametrize(
    ("csv_text", "message"),
    [
        ("path\nreal/a.mp4\n", "needs the columns path,label"),
        ("path,label\nreal/a.mp4,maybe\n", "label must be 'real' or 'fake'"),
        ("path,label,audio_fake\nreal/a.mp4,real,2\n", "expected 1/0"),
        ("path,label\nreal/gone.mp4,real\n", "not in the dataset"),
    ],
)
def test_folders_bad_labels_csv_is_a_clear_dataset_error(tmp_path, csv_text, message):
    (tmp_path / "real").mkdir()
    (tmp_path / "real/a.mp4").write_bytes(b"")
    (tmp_path / "labels.csv").write_text(csv_text)
    with pytest.raises(DatasetError, match=message):
        list_clips("folders", open_storage(tmp_path))


def test_folders_without_videos_says_what_it_expects(tmp_path):
    with pytest.raises(DatasetError, match="expects real/ and fake/ folders"):
        list_clips("folders", open_storage(tmp_path))


# --- preparing to a folder --------------------------------------------------------------------


@pytest.fixture(scope="module")
def prepared(dataset, tmp_path_factory):
    """The tree prepared once to a local folder: (folder, summary)."""
    out = tmp_path_factory.mktemp("prepared")
    summary = prepare_dataset(str(dataset), str(out), "folders", frames_per_clip=FRAMES)
    return out, summary


def test_prepared_layout_has_face_crops_voices_and_labels(prepared):
    out, summary = prepared
    assert (summary.clips, summary.written, summary.already_done) == (8, 6, 0)
    assert dict(summary.skipped) == {"no audio": 1, "broken video": 1}
    assert summary.frames == 6 * FRAMES
    assert dict(summary.by_split) == {"train": 2, "validate": 2, "test": 2}
    assert "skipped 2 clips: broken video 1, no audio 1" in summary.describe()

    frames = sorted(p.relative_to(out).as_posix() for p in out.glob("frames/*/*/*"))
    voices = sorted(p.relative_to(out).as_posix() for p in out.glob("audio/*/*/*"))
    assert len(frames) == 6 * FRAMES and len(voices) == 6
    assert "frames/validate/fake/fake-id02-take-2_2.jpg" in frames
    assert "audio/test/real/real-id03-take-1.wav" in voices
    for path in frames:
        with Image.open(out / path) as image:
            assert (image.format, image.size, image.mode) == ("JPEG", (224, 224), "RGB")
    for path in voices:
        wave, rate = soundfile.read(out / path)
        assert rate == 16000 and wave.ndim == 1
        assert len(wave) == pytest.approx(16000, abs=1600)  # the one-second clip
        assert np.abs(wave).max() > 0.01  # the voice, not silence

    with open(out / "labels/clips.csv", newline="") as handle:
        rows = {row["clip_id"]: row for row in csv.DictReader(handle)}
    assert tuple(next(iter(rows.values()))) == CLIPS_COLUMNS
    assert len(rows) == 6  # written clips only
    assert rows["fake-id02-take-2"] == {
        "clip_id": "fake-id02-take-2",
        "split": "validate",
        "label": "fake",
        "category": "FakeVideo-RealAudio",
        "visual_fake": "1",
        "audio_fake": "0",
        "identity": "id02",
        "source": "fake/id02/take_2.mp4",
    }
    assert rows["real-id01-take-1"]["category"] == "real"
    assert (rows["real-id01-take-1"]["visual_fake"], rows["real-id01-take-1"]["audio_fake"]) == (
        "0",
        "0",
    )


def test_prepared_frames_pair_with_their_own_voice(prepared):
    out, _ = prepared
    index = scan_dataset(open_storage(out), prefix="")
    assert index.ignored == []  # labels/ files are part of the layout
    samples = [s for split in ("train", "validate", "test") for s in pair_samples(index, split)]
    assert len(samples) == 6 * FRAMES
    assert all(s.true_pair for s in samples)
    for sample in samples:
        clip = Path(sample.audio_key).stem
        assert Path(sample.image_key).stem.rsplit("_", 1)[0] == clip


def test_rerun_skips_every_clip_and_writes_nothing(dataset, prepared):
    out, _ = prepared
    before = _files(out)
    again = prepare_dataset(str(dataset), str(out), "folders", frames_per_clip=FRAMES)
    assert (again.written, again.already_done, sum(again.skipped.values())) == (0, 8, 0)
    assert _files(out) == before


def test_a_destination_prepared_otherwise_is_refused(dataset, prepared):
    out, _ = prepared
    with pytest.raises(ConfigError, match="frames_per_clip differ"):
        prepare_dataset(str(dataset), str(out), "folders", frames_per_clip=FRAMES + 1)


def test_an_interrupted_run_resumes_with_the_missing_clips_only(dataset, tmp_path):
    out = tmp_path / "out"
    first = prepare_dataset(str(dataset), str(out), "folders", frames_per_clip=1, max_clips=3)
    assert first.clips == 3
    done = _files(out)
    second = prepare_dataset(str(dataset), str(out), "folders", frames_per_clip=1)
    assert (second.already_done, second.written + sum(second.skipped.values())) == (3, 5)
    after = _files(out)
    assert {k: v for k, v in after.items() if k in done and not k.startswith("labels/")} == {
        k: v for k, v in done.items() if not k.startswith("labels/")
    }
    assert len(list(out.glob("audio/*/*/*.wav"))) == 6


# --- S3 to S3, in worker processes ---------------------------------------------------------------


@pytest.mark.slow
def test_s3_to_s3_with_workers_streams_and_resumes(dataset, prepared, s3_bucket, tmp_path):
    client = s3_bucket.server.client()
    for path in dataset.rglob("*"):
        if path.is_file():
            key = f"raw/{path.relative_to(dataset).as_posix()}"
            client.put_object(Bucket=s3_bucket.name, Key=key, Body=path.read_bytes())
    work = tmp_path / "work"
    work.mkdir()
    cwd, tempdir = os.getcwd(), tempfile.tempdir
    os.chdir(work)
    tempfile.tempdir = str(work)
    try:
        summary = prepare_dataset(
            s3_bucket.uri("raw/"),
            s3_bucket.uri("ready/"),
            "folders",
            endpoint_url=s3_bucket.endpoint_url,
            workers=2,
            frames_per_clip=FRAMES,
        )
    finally:
        os.chdir(cwd)
        tempfile.tempdir = tempdir
    assert list(work.iterdir()) == []  # nothing of the dataset landed on local disk
    assert (summary.written, dict(summary.skipped)) == (6, {"no audio": 1, "broken video": 1})

    local, _ = prepared
    keys = [k.removeprefix("ready/") for k in s3_bucket.keys("ready/")]
    assert sorted(keys) == sorted(_files(local))  # the same layout as the local run
    for key in ("frames/train/fake/fake-id01-take-1_0.jpg", "audio/test/fake/fake-id03-take-3.wav"):
        assert key in keys
    body = client.get_object(Bucket=s3_bucket.name, Key="ready/labels/clips.csv")["Body"].read()
    assert body == (local / "labels/clips.csv").read_bytes()
    wav = client.get_object(Bucket=s3_bucket.name, Key="ready/audio/test/fake/fake-id03-take-3.wav")
    wave, rate = soundfile.read(io.BytesIO(wav["Body"].read()))
    assert (rate, wave.ndim) == (16000, 1)

    # A re-run rewrites nothing: marked objects keep their marks, no object is added.
    marked = ["ready/frames/train/real/real-id01-take-1_0.jpg", "ready/labels/manifest.jsonl"]
    originals = {}
    for key in marked:
        originals[key] = client.get_object(Bucket=s3_bucket.name, Key=key)["Body"].read()
    client.put_object(Bucket=s3_bucket.name, Key=marked[0], Body=b"mark")
    stamps = {
        item["Key"]: item["ETag"]
        for item in client.list_objects_v2(Bucket=s3_bucket.name, Prefix="ready/")["Contents"]
    }
    again = prepare_dataset(
        s3_bucket.uri("raw/"),
        s3_bucket.uri("ready/"),
        "folders",
        endpoint_url=s3_bucket.endpoint_url,
        workers=2,
        frames_per_clip=FRAMES,
    )
    assert (again.written, again.already_done) == (0, 8)
    after = {
        item["Key"]: item["ETag"]
        for item in client.list_objects_v2(Bucket=s3_bucket.name, Prefix="ready/")["Contents"]
    }
    assert after == stamps
    assert client.get_object(Bucket=s3_bucket.name, Key=marked[0])["Body"].read() == b"mark"


# --- the command ---------------------------------------------------------------------------------


def test_prepare_command_end_to_end(dataset, tmp_path, capsys):
    from mmdeepfake.cli.main import main

    out = tmp_path / "out"
    args = ["prepare", str(dataset), "--format", "folders", "--out", str(out), "--no-progress"]
    assert main([*args, "--frames-per-clip", "2", "-q"]) == 0
    printed = capsys.readouterr().out
    assert "prepared 6 clips (12 face frames)" in printed
    assert "skipped 2 clips: broken video 1, no audio 1" in printed
    assert len(list(out.glob("frames/*/*/*.jpg"))) == 12

    assert main([*args, "--frames-per-clip", "2"]) == 0
    assert "already done by an earlier run: 8 clips" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--splits", "0.5,0.5"], "argument --splits: '0.5,0.5' is not three"),
        (["--splits", "0.8,0.1,0.2"], "add up to 1"),
        (["--workers", "0"], "argument --workers: must be at least 1"),
        (["--format", "nope"], "argument --format: invalid choice: 'nope'"),
    ],
)
def test_prepare_usage_errors_are_one_line(dataset, tmp_path, capsys, extra, message):
    from mmdeepfake.cli.prepare import main

    args = [str(dataset), "--format", "folders", "--out", str(tmp_path / "o"), *extra]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err


def test_prepare_dataset_errors_have_no_traceback(tmp_path, capsys):
    from mmdeepfake.cli.prepare import main

    (tmp_path / "empty").mkdir()
    args = [str(tmp_path / "empty"), "--format", "folders", "--out", str(tmp_path / "o")]
    assert main(args) == DatasetError.exit_code
    err = capsys.readouterr().err
    assert err.startswith("error: no videos found") and "Traceback" not in err


# --- training on the result ----------------------------------------------------------------------


@pytest.mark.slow
def test_one_epoch_trains_on_the_prepared_folder(prepared, tmp_path, capsys):
    from mmdeepfake.cli.main import main

    out, _ = prepared
    args = ["train", "--data", str(out), "--config", "tiny", "--epochs", "1", "--no-progress"]
    assert main([*args, "--no-plots", "--output", str(tmp_path / "runs"), "--run-id", "r"]) == 0
    assert (tmp_path / "runs/r/logs/summary.json").is_file()
    # labels/clips.csv alone used to mark synthetic data; a prepared dataset is not.
    config = json.loads((tmp_path / "runs/r/models/best/config.json").read_text())
    assert config["metadata"]["synthetic_data"] is False


# --- the public datasets' formats, on their mini trees ------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("format_name", ["fakeavceleb", "dfdc", "lavdf", "avdeepfake1m"])
def test_each_public_format_prepares_with_its_broken_file_counted(format_name, tmp_path):
    from mmdeepfake.testing import datasets

    root = getattr(datasets, f"make_{format_name}")(tmp_path / "raw")
    listing = read_dataset(format_name, open_storage(root))
    listed = listing.clips
    out = tmp_path / "out"
    summary = prepare_dataset(str(root), str(out), format_name, frames_per_clip=2)
    assert summary.skipped["broken video"] == 1
    assert summary.left_out == listing.skipped  # named in the summary, not prepared
    if listing.skipped:
        assert f"left out by the dataset's metadata: {len(listing.skipped)}" in summary.describe()
    assert summary.written == len(listed) - sum(summary.skipped.values())
    assert summary.written > 0

    with open(out / "labels/clips.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == summary.written
    by_id = {clip.clip_id: clip for clip in listed}
    splits_of: dict[str, set[str]] = {}
    for row in rows:
        clip = by_id[row["clip_id"]]
        assert (row["label"], row["category"], row["source"]) == (
            clip.label,
            clip.category,
            clip.source,
        )
        expected_visual = "" if clip.visual_fake is None else str(int(clip.visual_fake))
        assert row["visual_fake"] == expected_visual
        assert (out / f"audio/{row['split']}/{row['label']}/{row['clip_id']}.wav").is_file()
        if row["identity"]:
            splits_of.setdefault(row["identity"], set()).add(row["split"])
    assert splits_of and all(len(splits) == 1 for splits in splits_of.values())

    index = scan_dataset(open_storage(out), prefix="")
    for split in index.splits():
        assert all(s.true_pair for s in pair_samples(index, split))
