"""Dataset adapters on miniature trees of each public format, and the split assignment.

The trees come from ``mmdeepfake.testing.datasets``; the expectations below are written out by
hand from what each ``make_*`` docstring says the tree holds.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mmdeepfake.data.layout import clip_id as layout_clip_id
from mmdeepfake.data.storage import LocalStorage, open_storage
from mmdeepfake.errors import ConfigError, DatasetError
from mmdeepfake.prepare.clips import CLIP_ID_PATTERN, FORMATS, Clip, list_clips, read_dataset
from mmdeepfake.prepare.formats.common import unique_ids
from mmdeepfake.prepare.splits import assign_splits
from mmdeepfake.testing.datasets import (
    BROKEN_VIDEO,
    make_avdeepfake1m,
    make_dfdc,
    make_fakeavceleb,
    make_lavdf,
)


def by_source(clips: list[Clip]) -> dict[str, Clip]:
    return {clip.source: clip for clip in clips}


def assert_ids_safe(clips: list[Clip]) -> None:
    ids = [clip.clip_id for clip in clips]
    assert len(set(ids)) == len(ids)
    for clip_id in ids:
        assert CLIP_ID_PATTERN.match(clip_id)
        # The training layout reads the id back from frame and audio file names.
        assert layout_clip_id(f"frames/train/fake/{clip_id}_3.jpg") == clip_id
        assert layout_clip_id(f"audio/train/fake/{clip_id}.wav") == clip_id


def test_every_format_is_registered_when_listing() -> None:
    with pytest.raises(ConfigError, match="unknown dataset format 'nope'"):
        list_clips("nope", LocalStorage("."))
    assert {"fakeavceleb", "dfdc", "lavdf", "avdeepfake1m"} <= set(FORMATS)


# --- FakeAVCeleb -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fakeavceleb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_fakeavceleb(tmp_path_factory.mktemp("fav"), identities=4, clips_per_identity=2)


def test_fakeavceleb_labels_categories_and_identities(fakeavceleb: Path) -> None:
    listing = read_dataset("fakeavceleb", LocalStorage(fakeavceleb))
    clips = by_source(listing.clips)
    assert len(clips) == 4 * 4 * 2 + 1  # four categories, two clips each, one broken file
    assert listing.skipped == []
    assert Counter(c.category for c in clips.values()) == {"A": 8, "B": 8, "C": 8, "D": 9}
    person = "African/men/id00076"
    real = clips[f"RealVideo-RealAudio/{person}/00109.mp4"]
    assert (real.clip_id, real.label, real.category) == ("A-id00076-00109", "real", "A")
    assert (real.visual_fake, real.audio_fake, real.identity, real.split) == (
        False,
        False,
        "id00076",
        None,
    )
    # No CSV row for this one: its labels come from the folders alone.
    voice = clips[f"RealVideo-FakeAudio/{person}/00109_fake.mp4"]
    assert (voice.clip_id, voice.label, voice.category) == ("B-id00076-00109-fake", "fake", "B")
    assert (voice.visual_fake, voice.audio_fake, voice.identity) == (False, True, "id00076")
    # Another person's id in the file name: the person is the folder's.
    face = clips[f"FakeVideo-RealAudio/{person}/00109_id00083_wavtolip.mp4"]
    assert (face.category, face.visual_fake, face.audio_fake) == ("C", True, False)
    assert face.identity == "id00076"
    both = clips["FakeVideo-FakeAudio/Asian (East)/women/id00083/00119.mp4"]
    assert (both.category, both.visual_fake, both.audio_fake, both.label) == (
        "D",
        True,
        True,
        "fake",
    )
    assert both.identity == "id00083"
    # 00109 and 00109_3 side by side get ids the layout cannot pair up.
    plain = clips[f"FakeVideo-FakeAudio/{person}/00109.mp4"].clip_id
    third = clips[f"FakeVideo-FakeAudio/{person}/00109_3.mp4"].clip_id
    assert (plain, third) == ("D-id00076-00109", "D-id00076-00109-3")
    assert_ids_safe(listing.clips)


def test_fakeavceleb_csv_keeps_its_quirks(fakeavceleb: Path) -> None:
    header, first = (fakeavceleb / "meta_data.csv").read_text().splitlines()[:2]
    assert header == "source,target1,target2,method,category,type,race,gender,path,"
    assert first.endswith(",00109.mp4,FakeAVCeleb/RealVideo-RealAudio/African/men/id00076")
    assert (fakeavceleb / "FakeVideo-FakeAudio/African/men/id00076/00109_9.mp4").read_bytes() == (
        BROKEN_VIDEO
    )


def test_fakeavceleb_without_csv_reads_the_folders(fakeavceleb: Path, tmp_path: Path) -> None:
    with_csv = list_clips("fakeavceleb", LocalStorage(fakeavceleb))
    copy = tmp_path / "copy"
    for path in fakeavceleb.rglob("*.mp4"):
        target = copy / path.relative_to(fakeavceleb)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(b"")
    assert list_clips("fakeavceleb", LocalStorage(copy)) == with_csv


def write_csv(root: Path, *rows: str) -> None:
    header = "source,target1,target2,method,category,type,race,gender,path,"
    (root / "meta_data.csv").write_text("\n".join([header, *rows]) + "\n")


def test_fakeavceleb_reports_rows_without_video_and_refuses_garbled_ones(tmp_path: Path) -> None:
    root = tmp_path / "fav"
    (root / "RealVideo-RealAudio/African/men/id00001").mkdir(parents=True)
    (root / "RealVideo-RealAudio/African/men/id00001/00001.mp4").write_bytes(b"")
    folder = "RealVideo-RealAudio/African/men/id00001"
    row = "id00001,-,-,real,A,RealVideo-RealAudio,African,men,{}," + f"FakeAVCeleb/{folder}"
    write_csv(root, row.format("00001.mp4"), row.format("00002.mp4"))
    listing = read_dataset("fakeavceleb", LocalStorage(root))
    assert [c.clip_id for c in listing.clips] == ["A-id00001-00001"]
    assert listing.skipped == [
        "meta_data.csv line 3: RealVideo-RealAudio/African/men/id00001/00002.mp4 is not in the tree"
    ]
    write_csv(root, row.format("00001.mp4"), "id00001,-,-,real,A")
    with pytest.raises(DatasetError, match=r"meta_data.csv line 3: 5 fields, the header has 10"):
        read_dataset("fakeavceleb", LocalStorage(root))
    write_csv(root, row.format("00001.mp4").replace(",A,", ",C,"))
    with pytest.raises(DatasetError, match=r"line 2: .*contradict the folder RealVideo-RealAudio"):
        read_dataset("fakeavceleb", LocalStorage(root))
    (root / "meta_data.csv").write_text("name,label\nx,y\n")
    with pytest.raises(DatasetError, match="FakeAVCeleb header"):
        read_dataset("fakeavceleb", LocalStorage(root))


def test_fakeavceleb_names_that_differ_only_in_punctuation_get_distinct_ids(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "RealVideo-RealAudio/African/men/id00001"
    folder.mkdir(parents=True)
    for name in ("00109.mp4", "00109_3.mp4", "00109-3.mp4", "00109-3-1.mp4", "stray.txt"):
        (folder / name).write_bytes(b"")
    (tmp_path / "RealVideo-RealAudio/African/men/loose.mp4").write_bytes(b"")
    listing = read_dataset("fakeavceleb", LocalStorage(tmp_path))
    ids = {c.source.rsplit("/", 1)[1]: c.clip_id for c in listing.clips}
    assert ids == {
        "00109.mp4": "A-id00001-00109",
        "00109-3-1.mp4": "A-id00001-00109-3-1",
        "00109-3.mp4": "A-id00001-00109-3-2",
        "00109_3.mp4": "A-id00001-00109-3-3",
    }
    assert listing.skipped == [
        "RealVideo-RealAudio/African/men/loose.mp4: "
        + "not at <category>/<race>/<gender>/<identity>/<file>"
    ]
    assert_ids_safe(listing.clips)


def test_unique_ids_never_land_on_a_taken_id() -> None:
    assert unique_ids(["a", "b-1", "b", "b", "c"]) == ["a", "b-1", "b-2", "b-3", "c"]


def test_an_empty_folder_is_not_a_dataset(tmp_path: Path) -> None:
    for name in ("fakeavceleb", "dfdc", "lavdf", "avdeepfake1m"):
        with pytest.raises(DatasetError, match=str(tmp_path)):
            list_clips(name, LocalStorage(tmp_path))


# --- DFDC --------------------------------------------------------------------------------------


def test_dfdc_labels_and_groups_fakes_with_their_original(tmp_path: Path) -> None:
    root = make_dfdc(tmp_path, identities=4, clips_per_identity=3)
    listing = read_dataset("dfdc", LocalStorage(root))
    assert listing.skipped == []
    assert len(listing.clips) == 4 * 3 + 1
    metadata = json.loads((root / "dfdc_train_part_1/metadata.json").read_text())
    real_name = next(name for name, entry in metadata.items() if entry["label"] == "REAL")
    fake_name = next(name for name, e in metadata.items() if e["original"] == real_name)
    clips = by_source(listing.clips)
    real = clips[f"dfdc_train_part_1/{real_name}"]
    fake = clips[f"dfdc_train_part_1/{fake_name}"]
    assert (real.label, real.category, real.split) == ("real", "real", "train")
    assert (fake.label, fake.category, fake.split) == ("fake", "fake", "train")
    assert real.identity == fake.identity == real_name.removesuffix(".mp4")
    assert real.clip_id == real_name.removesuffix(".mp4")
    assert (fake.visual_fake, fake.audio_fake) == (None, None)  # DFDC does not say
    assert Counter(c.label for c in listing.clips) == {"real": 4, "fake": 9}
    assert_ids_safe(listing.clips)


def test_dfdc_one_part_as_root_and_what_it_skips(tmp_path: Path) -> None:
    part = make_dfdc(tmp_path, identities=4, clips_per_identity=2) / "dfdc_train_part_0"
    (part / "unlisted.mp4").write_bytes(b"")
    metadata = json.loads((part / "metadata.json").read_text())
    metadata["gone.mp4"] = {"label": "REAL", "split": "train", "original": None}
    (part / "metadata.json").write_text(json.dumps(metadata))
    listing = read_dataset("dfdc", LocalStorage(part))
    assert len(listing.clips) == 2 * 2 + 1
    assert sorted(listing.skipped) == [
        "gone.mp4: listed in metadata.json but missing",
        "unlisted.mp4: not listed in metadata.json",
    ]
    metadata["gone.mp4"]["label"] = "MAYBE"
    (part / "metadata.json").write_text(json.dumps(metadata))
    with pytest.raises(DatasetError, match=r"metadata.json: the entry 'gone.mp4' has no label"):
        read_dataset("dfdc", LocalStorage(part))
    (part / "metadata.json").write_text("{not json")
    with pytest.raises(DatasetError, match="metadata.json is not valid JSON"):
        read_dataset("dfdc", LocalStorage(part))


# --- LAV-DF ------------------------------------------------------------------------------------


def test_lavdf_per_modality_labels_and_official_splits(tmp_path: Path) -> None:
    root = make_lavdf(tmp_path, identities=4, clips_per_identity=4)
    listing = read_dataset("lavdf", LocalStorage(root))
    assert listing.skipped == []
    clips = by_source(listing.clips)
    assert len(clips) == 4 * 4 + 1
    expected = {
        "train/000000.mp4": ("real", "real", False, False, "train"),
        "train/000001.mp4": ("fake", "visual_modified", True, False, "train"),
        "train/000002.mp4": ("fake", "audio_modified", False, True, "train"),
        "train/000003.mp4": ("fake", "both_modified", True, True, "train"),
        "dev/000008.mp4": ("real", "real", False, False, "validate"),
        "test/000015.mp4": ("fake", "both_modified", True, True, "test"),
    }
    for source, (label, category, visual, audio, split) in expected.items():
        clip = clips[source]
        assert (clip.label, clip.category, clip.visual_fake, clip.audio_fake, clip.split) == (
            label,
            category,
            visual,
            audio,
            split,
        )
    assert clips["train/000003.mp4"].identity == clips["train/000000.mp4"].identity
    assert clips["dev/000009.mp4"].identity == "dev/000008"
    assert clips["test/000015.mp4"].clip_id == "test-000015"
    assert clips["train/000016.mp4"].identity == "train/000000"  # the broken one
    assert_ids_safe(listing.clips)


def test_lavdf_reads_the_min_metadata_and_refuses_bad_entries(tmp_path: Path) -> None:
    root = make_lavdf(tmp_path, identities=2, clips_per_identity=2, broken=False)
    full = list_clips("lavdf", LocalStorage(root))
    (root / "metadata.json").unlink()
    assert list_clips("lavdf", LocalStorage(root)) == full
    entries = json.loads((root / "metadata.min.json").read_text())
    entries[1]["split"] = "holdout"
    (root / "metadata.min.json").write_text(json.dumps(entries))
    with pytest.raises(DatasetError, match=r"train/000001.mp4: split 'holdout' is not one of"):
        list_clips("lavdf", LocalStorage(root))
    entries[1]["split"], entries[1]["modify_audio"] = "train", "yes"
    (root / "metadata.min.json").write_text(json.dumps(entries))
    with pytest.raises(DatasetError, match=r"'modify_audio' must be true or false, got 'yes'"):
        list_clips("lavdf", LocalStorage(root))


# --- AV-Deepfake1M -----------------------------------------------------------------------------


def test_avdeepfake1m_labels_splits_and_the_unlabelled_test_set(tmp_path: Path) -> None:
    root = make_avdeepfake1m(tmp_path, identities=4, clips_per_identity=4)
    listing = read_dataset("avdeepfake1m", LocalStorage(root))
    assert listing.skipped == [
        "test/lrs3/ytunknown/00001/clip.mp4: the official test set has no public labels"
    ]
    clips = by_source(listing.clips)
    assert len(clips) == 4 * 4 + 1
    vox = "train/vox_celeb_2/id00010/yt00000000/00001"
    expected = {
        f"{vox}/real.mp4": ("real", "real", False, False, "train", "id00010"),
        f"{vox}/fake_video_real_audio.mp4": (
            "fake",
            "visual_modified",
            True,
            False,
            "train",
            "id00010",
        ),
        f"{vox}/real_video_fake_audio.mp4": (
            "fake",
            "audio_modified",
            False,
            True,
            "train",
            "id00010",
        ),
        f"{vox}/fake_video_fake_audio.mp4": (
            "fake",
            "both_modified",
            True,
            True,
            "train",
            "id00010",
        ),
        "train/vox_celeb_2/id00010/yt00000000/00002/real.mp4": (
            "real",
            "real",
            False,
            False,
            "train",
            "id00010",
        ),
        "val/lrs3/yt00000003/00001/real_video_fake_audio.mp4": (
            "fake",
            "audio_modified",
            False,
            True,
            "validate",
            "lrs3/yt00000003",
        ),
    }
    for source, values in expected.items():
        clip = clips[source]
        got = (clip.label, clip.category, clip.visual_fake, clip.audio_fake, clip.split)
        assert (*got, clip.identity) == values
    assert clips[f"{vox}/real.mp4"].clip_id == "train-vox-celeb-2-id00010-yt00000000-00001-real"
    assert_ids_safe(listing.clips)


def test_avdeepfake1m_reads_flags_and_refuses_unknown_kinds(tmp_path: Path) -> None:
    root = make_avdeepfake1m(tmp_path, identities=2, clips_per_identity=2, broken=False)
    entries = json.loads((root / "train_metadata.json").read_text())
    del entries[1]["modify_type"]
    entries[1].update(modify_video=False, modify_audio=True)
    entries[0]["modify_type"] = "both-modified"
    (root / "train_metadata.json").write_text(json.dumps(entries))
    clips = list_clips("avdeepfake1m", LocalStorage(root))
    assert [(c.visual_fake, c.audio_fake) for c in clips[:2]] == [(True, True), (False, True)]
    entries[0]["modify_type"] = "lip_modified"
    (root / "train_metadata.json").write_text(json.dumps(entries))
    with pytest.raises(DatasetError, match=r"train_metadata.json: .*modify_type 'lip_modified'"):
        list_clips("avdeepfake1m", LocalStorage(root))


# --- the same listing from S3 ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "make"),
    [
        ("fakeavceleb", make_fakeavceleb),
        ("dfdc", make_dfdc),
        ("lavdf", make_lavdf),
        ("avdeepfake1m", make_avdeepfake1m),
    ],
)
@pytest.mark.slow
def test_a_dataset_in_s3_lists_as_on_disk(
    name: str, make: Callable[..., Path], tmp_path: Path, s3_bucket: Any
) -> None:
    root = make(tmp_path, identities=2)
    bucket = open_storage(s3_bucket.uri(f"raw/{root.name}/"), endpoint_url=s3_bucket.endpoint_url)
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        bucket.write_bytes(path.relative_to(root).as_posix(), path.read_bytes())
    assert read_dataset(name, bucket) == read_dataset(name, LocalStorage(root))


# --- splits ------------------------------------------------------------------------------------


def people(sizes: list[int]) -> list[Clip]:
    """Person ``p`` with ``sizes[p]`` clips, alternately real and fake."""
    return [
        Clip(f"p{p}-c{c}", f"p{p}/c{c}.mp4", "fake" if c % 2 else "real", "x", identity=f"p{p}")
        for p, size in enumerate(sizes)
        for c in range(size)
    ]


def splits_of_people(clips: list[Clip]) -> dict[str, set[str]]:
    found: dict[str, set[str]] = defaultdict(set)
    for clip in clips:
        assert clip.split is not None
        found[clip.identity or clip.clip_id].add(clip.split)
    return found


def test_splits_keep_people_apart_and_meet_the_fractions() -> None:
    sizes = [1 + (p * 7) % 5 for p in range(60)]  # 1 to 5 clips a person
    clips = people(sizes)
    for seed in range(5):
        assigned = assign_splits(clips, (0.7, 0.2, 0.1), seed=seed)
        assert [c.clip_id for c in assigned] == [c.clip_id for c in clips]
        assert all(len(s) == 1 for s in splits_of_people(assigned).values())
        counts = Counter(c.split for c in assigned)
        for name, share in zip(("train", "validate", "test"), (0.7, 0.2, 0.1)):
            assert abs(counts[name] - share * len(clips)) <= max(sizes)
    assert assign_splits(clips, seed=3) == assign_splits(clips, seed=3)
    assert assign_splits(clips, seed=3) != assign_splits(clips, seed=4)


def test_clips_without_identity_are_groups_of_their_own() -> None:
    clips = [Clip(f"c{i}", f"c{i}.mp4", "real", "x") for i in range(100)]
    counts = Counter(c.split for c in assign_splits(clips, (0.6, 0.3, 0.1)))
    assert counts == {"train": 60, "validate": 30, "test": 10}
    assert Counter(c.split for c in assign_splits(clips, (1.0, 0.0, 0.0))) == {"train": 100}


def test_official_splits_are_kept(tmp_path: Path) -> None:
    clips = list_clips("lavdf", LocalStorage(make_lavdf(tmp_path, identities=8)))
    assert assign_splits(clips) == clips


def test_missing_official_parts_are_carved_from_train_by_group(tmp_path: Path) -> None:
    dfdc = list_clips(
        "dfdc", LocalStorage(make_dfdc(tmp_path, identities=20, clips_per_identity=3))
    )
    assigned = assign_splits(dfdc, (0.6, 0.2, 0.2), seed=1)
    assert all(len(s) == 1 for s in splits_of_people(assigned).values())
    counts = Counter(c.split for c in assigned)
    for name, share in (("train", 0.6), ("validate", 0.2), ("test", 0.2)):
        assert abs(counts[name] - share * len(dfdc)) <= 4  # the largest group: 3 + broken

    av = list_clips("avdeepfake1m", LocalStorage(make_avdeepfake1m(tmp_path, identities=30)))
    carved = by_source(assign_splits(av, (0.8, 0.1, 0.1)))
    for clip in av:
        if clip.split == "validate":
            assert carved[clip.source].split == "validate"
        else:
            assert carved[clip.source].split in ("train", "test")
    counts = Counter(c.split for c in carved.values())
    official_train = sum(c.split == "train" for c in av)
    # Only test is missing: it takes 0.1 / (0.8 + 0.1) of the official train clips.
    assert abs(counts["test"] - official_train / 9) <= 3
    assert counts["validate"] == sum(c.split == "validate" for c in av)
    assert all(len(s) == 1 for s in splits_of_people(list(carved.values())).values())


@pytest.mark.parametrize(
    "fractions",
    [(0.5, 0.5), (0.9, 0.2, -0.1), (0.0, 0.5, 0.5), (0.5, 0.3, 0.1), (float("nan"), 0.5, 0.5)],
)
def test_split_fractions_are_checked(fractions: tuple[float, ...]) -> None:
    with pytest.raises(ConfigError, match="fraction"):
        assign_splits(people([2, 2]), fractions)
