"""The dataset layout: finding the files of a dataset and pairing faces with voices.

A dataset lives under a prefix of a :class:`~mmdeepfake.data.storage.Storage` (a local folder or
``s3://bucket/prefix``)::

    frames/{train,validate,test}/{real,fake}/*.jpg|jpeg|png     face images
    audio/{train,validate,test}/{real,fake}/*.wav|flac|mp3|ogg   voice recordings
    videos/{train,validate,test}/{real,fake}/*.mp4|mov|webm|mkv  optional: clips with both
    labels/emotions.csv                                          optional: key,emotion

**Clip ids.** A file's clip id is its stem without an optional ``_<digits>`` suffix:
``c0003_02.png`` (frame 2 of clip ``c0003``) and ``c0003.wav`` share the clip id ``c0003``.
Only one suffix is removed, so ``id10_0001_05.png`` belongs to clip ``id10_0001``. Images and
audio of the same split and label that share a clip id are *true pairs*; see
:func:`pair_samples` for the rest.

**emotions.csv.** A header ``key,emotion`` and one row per labelled item. ``key`` is either

* a file path relative to the dataset prefix (``frames/train/fake/c0003_02.png``): the label of
  that one file, or
* a clip id (``c0003``): the label of every image, audio and video file of that clip, in both
  modalities. Clip ids are therefore expected to be unique across splits and labels.

A file-path row wins over a clip-id row. ``emotion`` is a name from
:data:`mmdeepfake.labels.EMOTIONS` (any case) or its index ``0..6``; files without a row have
the unknown emotion ``-1``. Files elsewhere (other folders, other extensions) are ignored and
counted in :attr:`DatasetIndex.ignored`.
"""

from __future__ import annotations

import csv
import io
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

import numpy as np

from mmdeepfake.data.storage import Storage
from mmdeepfake.errors import DatasetError
from mmdeepfake.labels import EMOTION_INDEX, EMOTIONS

if TYPE_CHECKING:  # clip_labels imports this module
    from mmdeepfake.data.clip_labels import ClipLabel

__all__ = [
    "EXPECTED_LAYOUT",
    "LABEL_NAMES",
    "MODALITIES",
    "SPLITS",
    "DatasetIndex",
    "PairedSample",
    "clip_id",
    "count_pairs",
    "index_keys",
    "pair_samples",
    "parse_emotions_csv",
    "scan_dataset",
]

log = logging.getLogger(__name__)

SPLITS: tuple[str, ...] = ("train", "validate", "test")
LABEL_NAMES: tuple[str, str] = ("real", "fake")  # index = label: 0 real, 1 fake
MODALITIES: dict[str, tuple[str, ...]] = {
    "frames": (".jpg", ".jpeg", ".png"),
    "audio": (".wav", ".flac", ".mp3", ".ogg"),
    "videos": (".mp4", ".mov", ".webm", ".mkv"),
}
EMOTIONS_CSV = "labels/emotions.csv"
# Per-clip ground truth that mmdeepfake-synth and mmdeepfake-prepare write beside the data.
CLIPS_CSV = "labels/clips.csv"
# What mmdeepfake-prepare keeps to resume: its settings and the clips it finished.
PREPARE_SETTINGS = "labels/prepare.json"
PREPARE_MANIFEST = "labels/manifest.jsonl"
#: Files of the layout that are not samples: read where needed, never reported as ignored.
LABEL_FILES: tuple[str, ...] = (EMOTIONS_CSV, CLIPS_CSV, PREPARE_SETTINGS, PREPARE_MANIFEST)
EXPECTED_LAYOUT = (
    "frames/{train,validate,test}/{real,fake}/*.jpg|png, "
    "audio/{train,validate,test}/{real,fake}/*.wav|flac|mp3, "
    "optional videos/{split}/{label}/*.mp4 and labels/emotions.csv (key,emotion)"
)

_FRAME_SUFFIX = re.compile(r"^(.+)_\d+$")


def clip_id(key: str) -> str:
    """The clip id of a file: its stem without an optional ``_<digits>`` frame suffix."""
    stem = PurePosixPath(key).stem
    match = _FRAME_SUFFIX.match(stem)
    return match.group(1) if match else stem


@dataclass
class DatasetIndex:
    """Every usable file of a dataset, grouped by modality, split and label.

    ``files[modality][(split, label)]`` holds sorted keys relative to the *storage root* (so
    ``storage.read_bytes(key)`` works directly); ``emotions`` maps keys relative to the
    *dataset prefix*, or clip ids, to emotion indices.
    """

    prefix: str
    files: dict[str, dict[tuple[str, str], list[str]]]
    emotions: dict[str, int] = field(default_factory=dict)
    ignored: list[str] = field(default_factory=list)
    location: str = ""  # where the dataset is (path or s3:// URI), for messages

    def where(self, relative: str = "") -> str:
        """A user-facing address of a path relative to the dataset prefix."""
        base = self.location or self.prefix
        return (base.rstrip("/") + "/" + relative) if base else relative

    def keys(self, modality: str, split: str, label: str) -> list[str]:
        """The keys of one modality (``frames``/``audio``/``videos``) in one split and label."""
        return self.files.get(modality, {}).get((split, label), [])

    def counts(self) -> dict[str, dict[str, dict[str, int]]]:
        """``counts()[split][label][modality]`` -> number of files."""
        return {
            split: {
                label: {modality: len(self.keys(modality, split, label)) for modality in MODALITIES}
                for label in LABEL_NAMES
            }
            for split in SPLITS
        }

    def splits(self) -> list[str]:
        """The splits that hold at least one file."""
        return [
            split
            for split in SPLITS
            if any(self.keys(m, split, label) for m in MODALITIES for label in LABEL_NAMES)
        ]

    def emotion_of(self, key: str) -> int:
        """The emotion index of a file (key relative to the storage root), or -1 if unknown."""
        relative = key.removeprefix(self.prefix)
        found = self.emotions.get(relative)
        if found is None:
            found = self.emotions.get(clip_id(key), -1)
        return found

    def summary(self) -> str:
        """One line per split: file counts per label and modality (for logs and errors)."""
        lines = []
        for split, by_label in self.counts().items():
            parts = [
                f"{label}: {c['frames']} frames, {c['audio']} audio, {c['videos']} videos"
                for label, c in by_label.items()
            ]
            lines.append(f"{split}: " + "; ".join(parts))
        return "\n".join(lines)


@dataclass(frozen=True)
class PairedSample:
    """One training/evaluation sample: a face image, a voice recording and their labels.

    ``image_label`` and ``audio_label`` are the targets of the image and audio heads (0 real,
    1 fake, -1 unknown: the head learns ``label``), filled from ``labels/clips.csv`` by
    :func:`pair_samples` for true pairs.
    """

    image_key: str
    audio_key: str
    label: int  # 0 real, 1 fake
    true_pair: bool  # True when both files share a clip id; False when paired at random
    face_emotion: int  # index into EMOTIONS, -1 unknown
    voice_emotion: int  # index into EMOTIONS, -1 unknown
    split: str = "train"
    image_label: int = -1  # is the face manipulated (visual_fake); -1 unknown
    audio_label: int = -1  # is the voice manipulated (audio_fake); -1 unknown


def _normalise_prefix(prefix: str) -> str:
    prefix = prefix.strip("/")
    return prefix + "/" if prefix else ""


def parse_emotions_csv(text: str, *, source: str = EMOTIONS_CSV) -> dict[str, int]:
    """Read ``key,emotion`` rows into ``{key: emotion index}``; DatasetError on a bad row."""
    reader = csv.reader(io.StringIO(text))
    header = [cell.strip().lower() for cell in next(reader, [])]
    if header[:2] != ["key", "emotion"]:
        raise DatasetError(
            f"{source} must start with the header 'key,emotion' (found {','.join(header)!r}); "
            "fix the first line"
        )
    names = {name.lower(): index for name, index in EMOTION_INDEX.items()}
    table: dict[str, int] = {}
    for line_no, row in enumerate(reader, start=2):
        if not row or not "".join(row).strip():
            continue
        if len(row) < 2:
            raise DatasetError(f"{source} line {line_no}: expected 'key,emotion', got {row!r}")
        key, value = row[0].strip().lstrip("/"), row[1].strip().lower()
        if value in names:
            table[key] = names[value]
        elif value.isdigit() and int(value) < len(EMOTIONS):
            table[key] = int(value)
        else:
            raise DatasetError(
                f"{source} line {line_no}: unknown emotion {row[1]!r}; use one of "
                f"{', '.join(EMOTIONS)} or an index 0-{len(EMOTIONS) - 1}"
            )
    return table


def _classify(relative: str) -> tuple[str, str, str] | None:
    """``(modality, split, label)`` of a key relative to the prefix, or None if not in layout."""
    parts = relative.split("/")
    if len(parts) != 4:
        return None
    modality, split, label, name = parts
    if (
        modality in MODALITIES
        and split in SPLITS
        and label in LABEL_NAMES
        and name.lower().endswith(MODALITIES[modality])
        and not name.startswith(".")
    ):
        return modality, split, label
    return None


def index_keys(keys: Iterable[str], prefix: str = "") -> DatasetIndex:
    """Group keys (relative to the storage root, all under ``prefix``) into a DatasetIndex."""
    prefix = _normalise_prefix(prefix)
    files: dict[str, dict[tuple[str, str], list[str]]] = {m: {} for m in MODALITIES}
    ignored: list[str] = []
    for key in sorted(keys):
        relative = key[len(prefix) :]
        place = _classify(relative)
        if place is None:
            if relative not in LABEL_FILES:
                ignored.append(key)
            continue
        modality, split, label = place
        files[modality].setdefault((split, label), []).append(key)
    return DatasetIndex(prefix=prefix, files=files, ignored=ignored)


def scan_dataset(storage: Storage, prefix: str = "dataset/") -> DatasetIndex:
    """List a dataset under ``prefix`` of ``storage`` and read its emotion labels.

    Raises DatasetError, naming the prefix and the expected layout, when the prefix holds no
    file of the layout.
    """
    prefix = _normalise_prefix(prefix)
    keys = storage.list(prefix)
    index = index_keys(keys, prefix)
    index.location = storage.uri(prefix)
    if not index.splits():
        found = f"{len(keys)} files, none in the layout" if keys else "nothing"
        raise DatasetError(
            f"no dataset found under {storage.uri(prefix)} ({found}); expected {EXPECTED_LAYOUT}. "
            "Check --prefix/--data, or create one with `mmdeepfake-synth --out "
            f"{storage.uri(prefix)}`"
        )
    if prefix + EMOTIONS_CSV in keys:
        text = storage.read_bytes(prefix + EMOTIONS_CSV).decode("utf-8-sig")
        index.emotions = parse_emotions_csv(text, source=storage.uri(prefix + EMOTIONS_CSV))
    if index.ignored:
        log.warning(
            "%d files under %s are not in the dataset layout and were ignored (first: %s)",
            len(index.ignored),
            storage.uri(prefix),
            index.ignored[0],
        )
    return index


def pair_samples(
    index: DatasetIndex,
    split: str,
    seed: int = 0,
    *,
    clip_labels: Mapping[str, ClipLabel] | None = None,
) -> list[PairedSample]:
    """Pair every face image of ``split`` with a voice recording of the same split and label.

    Every image becomes one sample (frames are the more numerous modality; each recording is
    reused by the frames of its clip). An image whose clip id matches recordings of the same
    split and label is paired with one of them (a *true pair*); any other image gets a
    recording drawn at random, with ``seed``, from the same split and label. The result is in
    a fixed order for a given index and seed; :func:`count_pairs` counts true vs random pairs,
    and this function logs the counts.

    ``clip_labels`` (from :func:`mmdeepfake.data.clip_labels.read_clip_labels`) gives each
    true pair whose clip has a row the per-modality targets ``image_label`` (``visual_fake``)
    and ``audio_label`` (``audio_fake``). A random pair keeps -1, so both heads learn the pair's
    label: its face and voice come from two different clips of that label, and two fakes
    manipulated in different modalities (a fake voice with a real face, a fake face with a real
    voice) would make a pair labelled fake whose face and voice are both real.

    Raises DatasetError when the split has no images, or a label with images has no audio.
    """
    if split not in SPLITS:
        raise DatasetError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    rng = np.random.default_rng([seed, SPLITS.index(split)])
    samples: list[PairedSample] = []
    for label_index, label in enumerate(LABEL_NAMES):
        images = index.keys("frames", split, label)
        audio = index.keys("audio", split, label)
        if images and not audio:
            raise DatasetError(
                f"{index.where(f'frames/{split}/{label}/')} has {len(images)} images but "
                f"{index.where(f'audio/{split}/{label}/')} has no audio to pair them with; "
                f"expected {EXPECTED_LAYOUT}"
            )
        by_clip: dict[str, list[str]] = {}
        for key in audio:
            by_clip.setdefault(clip_id(key), []).append(key)
        for image_key in images:
            matches = by_clip.get(clip_id(image_key))
            pool = matches or audio
            audio_key = pool[int(rng.integers(len(pool)))] if len(pool) > 1 else pool[0]
            listed = clip_labels.get(clip_id(image_key)) if clip_labels and matches else None
            image_label, audio_label = listed.modality_targets() if listed else (-1, -1)
            samples.append(
                PairedSample(
                    image_key=image_key,
                    audio_key=audio_key,
                    label=label_index,
                    true_pair=bool(matches),
                    face_emotion=index.emotion_of(image_key),
                    voice_emotion=index.emotion_of(audio_key),
                    split=split,
                    image_label=image_label,
                    audio_label=audio_label,
                )
            )
    if not samples:
        raise DatasetError(
            f"split {split!r} of the dataset at {index.where() or 'the storage root'} has no face "
            f"images (frames/{split}/real/ and frames/{split}/fake/ are empty); expected "
            f"{EXPECTED_LAYOUT}"
        )
    true_pairs, random_pairs = count_pairs(samples)
    log.info(
        "split %s: %d samples, %d true pairs (shared clip id), %d random pairs",
        split,
        len(samples),
        true_pairs,
        random_pairs,
    )
    if clip_labels:
        labelled = sum(s.image_label >= 0 or s.audio_label >= 0 for s in samples)
        log.info(
            "split %s: %d true pairs carry per-modality labels from clips.csv", split, labelled
        )
    return samples


def count_pairs(samples: Iterable[PairedSample]) -> tuple[int, int]:
    """``(true_pairs, random_pairs)`` among ``samples``."""
    flags = [sample.true_pair for sample in samples]
    return sum(flags), len(flags) - sum(flags)
