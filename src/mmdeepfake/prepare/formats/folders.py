"""The ``folders`` format: a dataset of your own as ``real/`` and ``fake/`` trees of videos.

::

    real/**/*.mp4|mov|webm|mkv      real clips, at any depth
    fake/**/*.mp4|mov|webm|mkv      fake clips, at any depth
    labels.csv                      optional: path,label[,category,visual_fake,audio_fake,
                                    identity,split]

**Labels.** A clip's label is its top folder (``real`` or ``fake``). A ``labels.csv`` row,
keyed by the video's path relative to the dataset root, overrides it and adds what the folders
cannot say; a row may also name a video outside ``real/`` and ``fake/``. Empty cells keep the
default. ``visual_fake`` / ``audio_fake`` read ``1/0``, ``true/false`` or ``yes/no``; without
them a real clip is real in both modalities and a fake clip's modalities are unknown.

**Identity.** From the CSV's ``identity`` column; else, when the video sits in a folder under
``real/`` or ``fake/`` (``real/<person>/clip.mp4``), that first folder is the person, so one
person's clips stay in one split; a video directly in ``real/`` or ``fake/`` has no identity.

**Clip ids.** The path without its extension, with every run of characters other than letters
and digits turned into ``-`` (``real/id01/take_2.mp4`` -> ``real-id01-take-2``). Paths that
would share an id all get a suffix from a hash of their full path, and the ids are checked to
be unique, so two videos can never write into each other's files.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections import defaultdict
from pathlib import PurePosixPath

from mmdeepfake.data.layout import MODALITIES
from mmdeepfake.data.storage import Storage
from mmdeepfake.errors import DatasetError
from mmdeepfake.prepare.clips import LABELS, Clip, DatasetListing, register_format

__all__ = ["LABELS_CSV", "folder_clip_ids", "list_folder_clips"]

LABELS_CSV = "labels.csv"
VIDEO_SUFFIXES = MODALITIES["videos"]
_OPTIONAL_COLUMNS = ("category", "visual_fake", "audio_fake", "identity", "split")
_TRUE = {"1", "true", "yes"}
_FALSE = {"0", "false", "no"}
_NOT_ID_CHARS = re.compile(r"[^A-Za-z0-9]+")


@register_format("folders")
def list_folder_clips(storage: Storage) -> DatasetListing:
    """Every video under ``real/`` and ``fake/`` (and every one ``labels.csv`` names)."""
    videos = [
        key
        for key in storage.list("")
        if PurePosixPath(key).suffix.lower() in VIDEO_SUFFIXES and key.split("/")[0] in LABELS
    ]
    rows = _read_labels(storage) if storage.exists(LABELS_CSV) else {}
    missing = sorted(set(rows) - set(videos))
    for path in missing:
        if not storage.exists(path):
            raise DatasetError(f"{LABELS_CSV} names {path!r}, which is not in the dataset")
    videos = sorted(set(videos) | set(missing))
    if not videos:
        raise DatasetError(
            "no videos found: the folders format expects real/ and fake/ folders of "
            f"{'/'.join(VIDEO_SUFFIXES)} files (and an optional {LABELS_CSV})"
        )
    ids = folder_clip_ids(videos)
    return DatasetListing([_clip(path, ids[path], rows.get(path, {})) for path in videos])


def folder_clip_ids(paths: list[str]) -> dict[str, str]:
    """A layout-safe, unique clip id per path (see the module's notes)."""
    by_slug: dict[str, list[str]] = defaultdict(list)
    for path in paths:
        stem = str(PurePosixPath(path).with_suffix(""))
        by_slug[_NOT_ID_CHARS.sub("-", stem).strip("-") or "clip"].append(path)
    ids: dict[str, str] = {}
    for slug, sharing in by_slug.items():
        for path in sharing:
            digest = hashlib.sha1(path.encode()).hexdigest()[:10]
            ids[path] = slug if len(sharing) == 1 else f"{slug}-{digest}"
    if len(set(ids.values())) != len(ids):
        raise DatasetError("two videos map to the same clip id; rename one of them")
    return ids


def _clip(path: str, clip_id: str, row: dict[str, str]) -> Clip:
    top, *folders = path.split("/")[:-1] or [""]
    label = row.get("label") or top
    if label not in LABELS:
        raise DatasetError(f"{path}: label must be 'real' or 'fake', got {label!r}")
    default_modality: bool | None = False if label == "real" else None
    identity = row.get("identity") or (folders[0] if top in LABELS and folders else None)
    return Clip(
        clip_id=clip_id,
        source=path,
        label=label,
        category=row.get("category") or label,
        visual_fake=_flag(row.get("visual_fake"), default_modality, path),
        audio_fake=_flag(row.get("audio_fake"), default_modality, path),
        identity=identity,
        split=row.get("split") or None,
    )


def _flag(text: str | None, default: bool | None, path: str) -> bool | None:
    if not text:
        return default
    value = text.lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise DatasetError(f"{LABELS_CSV}, {path}: expected 1/0, true/false or yes/no, got {text!r}")


def _read_labels(storage: Storage) -> dict[str, dict[str, str]]:
    """``{path: {column: value}}`` of ``labels.csv``, cells stripped, empty cells dropped."""
    reader = csv.DictReader(io.StringIO(storage.read_text(LABELS_CSV)))
    columns = [name.strip().lower() for name in reader.fieldnames or []]
    if "path" not in columns or "label" not in columns:
        raise DatasetError(
            f"{LABELS_CSV} needs the columns path,label (optional: {','.join(_OPTIONAL_COLUMNS)}); "
            f"found {','.join(columns)!r}"
        )
    rows: dict[str, dict[str, str]] = {}
    for row in reader:
        cells = {
            name.strip().lower(): (value or "").strip()
            for name, value in row.items()
            if name is not None  # cells beyond the header
        }
        path = cells.pop("path", "").lstrip("/")
        if path:
            rows[path] = {name: value for name, value in cells.items() if value}
    return rows
