"""LAV-DF (Localized Audio Visual DeepFake): ``metadata.json`` over ``train/``, ``dev/``, ``test/``.

The root holds the three split folders and ``metadata.json`` (``metadata.min.json`` holds the
same entries with fewer fields and is read when the full file is absent), a list of::

    {"file": "train/000001.mp4", "split": "train", "original": "train/000000.mp4",
     "modify_video": true, "modify_audio": false, "n_fakes": 1,
     "fake_periods": [[1.2, 1.8]], "duration": 4.5, ...}

``modify_video``/``modify_audio`` give the per-modality labels; a clip is fake when either is
set. The dataset's official split is kept (``dev`` is its validation part). LAV-DF has no
person ids in its metadata; a fake and the real video it was edited from (``original``,
``null`` for reals) share that video's name as ``identity``, so a split carved here keeps them
together. An entry whose video is missing, and a video no entry lists, are reported as
skipped; an entry without a readable ``file``, ``split`` or modify flag is a DatasetError
naming the entry.

Checked against: the official loader ``dataset/lavdf.py`` of github ControlNet/LAV-DF (its
``Metadata`` fields, ``read_json(root/metadata.min.json)``, the ``train``/``dev``/``test``
split names and video paths ``root/<file>``), and the dataset's licence (CC BY-NC 4.0).
"""

from __future__ import annotations

from typing import Any

from mmdeepfake.data.storage import Storage
from mmdeepfake.errors import DatasetError
from mmdeepfake.prepare.clips import Clip, DatasetListing, register_format
from mmdeepfake.prepare.formats.common import (
    id_part,
    modification_category,
    read_json,
    require_bool,
    unique_ids,
)

__all__ = ["METADATA", "OFFICIAL_SPLITS", "lavdf_clips"]

METADATA = ("metadata.json", "metadata.min.json")
#: LAV-DF's split names -> the layout's
OFFICIAL_SPLITS = {"train": "train", "dev": "validate", "test": "test"}


@register_format("lavdf")
def lavdf_clips(storage: Storage) -> DatasetListing:
    """Every entry of the metadata whose video exists, with its official split."""
    metadata_key = next((key for key in METADATA if storage.exists(key)), None)
    if metadata_key is None:
        raise DatasetError(
            f"no {' or '.join(METADATA)} in {storage.uri()}: give the LAV-DF root folder"
        )
    where = storage.uri(metadata_key)
    entries = read_json(storage, metadata_key)
    if not isinstance(entries, list):
        raise DatasetError(f"{where} is not a JSON list of entries")
    videos = {key for key in storage.list() if key.lower().endswith(".mp4")}
    found: list[tuple[str, dict[str, Any]]] = []
    skipped: list[str] = []
    listed = set()
    for number, entry in enumerate(entries):
        file = entry.get("file") if isinstance(entry, dict) else None
        if not isinstance(file, str) or not file:
            raise DatasetError(f"{where}: entry {number} has no 'file'")
        listed.add(file)
        if file not in videos:
            skipped.append(f"{file}: listed in {metadata_key} but missing")
            continue
        found.append((file, entry))
    skipped += [f"{key}: not listed in {metadata_key}" for key in sorted(videos - listed)]
    ids = unique_ids([id_part(file.rsplit(".", 1)[0]) for file, _entry in found])
    clips = [
        _clip(f"{where}: {file}", clip_id, file, entry)
        for clip_id, (file, entry) in zip(ids, found)
    ]
    return DatasetListing(clips, skipped)


def _clip(where: str, clip_id: str, file: str, entry: dict[str, Any]) -> Clip:
    visual_fake = require_bool(where, entry, "modify_video")
    audio_fake = require_bool(where, entry, "modify_audio")
    official = entry.get("split")
    split = OFFICIAL_SPLITS.get(official) if isinstance(official, str) else None
    if split is None:
        raise DatasetError(f"{where}: split {official!r} is not one of {sorted(OFFICIAL_SPLITS)}")
    original = entry.get("original")
    return Clip(
        clip_id=clip_id,
        source=file,
        label="fake" if visual_fake or audio_fake else "real",
        category=modification_category(visual_fake, audio_fake),
        visual_fake=visual_fake,
        audio_fake=audio_fake,
        identity=(original if isinstance(original, str) and original else file).rsplit(".", 1)[0],
        split=split,
    )
