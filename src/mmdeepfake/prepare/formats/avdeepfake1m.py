"""AV-Deepfake1M: ``{train,val}_metadata.json`` over the ``train/`` and ``val/`` video folders.

The root holds ``train/``, ``val/`` and ``test/`` and the metadata files. Each of
``train_metadata.json`` and ``val_metadata.json`` is a list of::

    {"file": "lrs3/xoB_Zp9L4TE/00001/fake_video_fake_audio.mp4", "original": "lrs3/.../real.mp4",
     "split": "train", "modify_type": "both_modified", "fake_segments": [[2.1, 2.5]],
     "visual_fake_segments": [...], "audio_fake_segments": [...], "audio_model": "...",
     "video_frames": 240, "audio_frames": 153600}

with ``file`` relative to the split's folder (the video is ``train/<file>``). ``modify_type``
is one of ``real``, ``visual_modified``, ``audio_modified``, ``both_modified`` and gives the
per-modality labels; entries that carry ``modify_video``/``modify_audio`` booleans instead (as
LAV-DF's) are read too. The official ``val`` split is the validation part; the test set's
labels are not public (``test_files.txt`` lists its videos only), so its videos are reported as
skipped and a test part is carved from ``train`` by :func:`mmdeepfake.prepare.splits.assign_splits`.
The metadata has no person field: the ``identity`` is the VoxCeleb2 speaker id (``idNNNNN``)
where the path of the clip's source video holds one, otherwise the source video's path less its
clip folder and file name (``lrs3/<youtube id>``: one speaker's recording), so carved splits
keep a fake, its source and the person's other clips together. An entry whose video is missing, or a
video no entry lists, is reported as skipped; an unreadable entry is a DatasetError naming it.

Checked against: the official loader ``python/avdeepfake1m/loader.py`` of github
ControlNet/AV-Deepfake1M (its ``Metadata`` fields, ``{subset}_metadata.json``, videos read from
``root/<subset>/<file>``, ``test_files.txt``, ``modify_type`` mapped to video/audio flags) and
public preprocessing code reading ``modify_type`` values such as ``audio_modified``. The exact
folder names inside ``file`` were not checked on a copy of the dataset (none was reachable).
"""

from __future__ import annotations

import re
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

__all__ = ["MODIFY_TYPES", "SUBSETS", "avdeepfake1m_clips"]

#: official subset folder -> the layout's split
SUBSETS = {"train": "train", "val": "validate"}
_VOXCELEB_ID = re.compile(r"^id\d+$")
#: modify_type -> (visual_fake, audio_fake)
MODIFY_TYPES = {
    "real": (False, False),
    "visual_modified": (True, False),
    "audio_modified": (False, True),
    "both_modified": (True, True),
}


@register_format("avdeepfake1m")
def avdeepfake1m_clips(storage: Storage) -> DatasetListing:
    """Every labelled video of the train and val subsets, with its official split."""
    subsets = [name for name in SUBSETS if storage.exists(f"{name}_metadata.json")]
    if not subsets:
        raise DatasetError(
            f"no train_metadata.json or val_metadata.json in {storage.uri()}: give the "
            "AV-Deepfake1M root folder"
        )
    keys = storage.list()
    videos = {key for key in keys if key.lower().endswith(".mp4")}
    found: list[tuple[str, str, dict[str, Any]]] = []  # (video key, subset, entry)
    skipped: list[str] = []
    listed: set[str] = set()
    for subset in subsets:
        metadata_key = f"{subset}_metadata.json"
        where = storage.uri(metadata_key)
        entries = read_json(storage, metadata_key)
        if not isinstance(entries, list):
            raise DatasetError(f"{where} is not a JSON list of entries")
        for number, entry in enumerate(entries):
            file = entry.get("file") if isinstance(entry, dict) else None
            if not isinstance(file, str) or not file:
                raise DatasetError(f"{where}: entry {number} has no 'file'")
            key = f"{subset}/{file}"
            listed.add(key)
            if key not in videos:
                skipped.append(f"{key}: listed in {metadata_key} but missing")
                continue
            found.append((key, subset, entry))
    for key in sorted(videos - listed):
        if key.startswith("test/"):
            skipped.append(f"{key}: the official test set has no public labels")
        else:
            skipped.append(f"{key}: not listed in any *_metadata.json")
    ids = unique_ids([id_part(key.rsplit(".", 1)[0]) for key, _subset, _entry in found])
    clips = [
        _clip(f"{storage.uri(subset + '_metadata.json')}: {key}", clip_id, key, subset, entry)
        for clip_id, (key, subset, entry) in zip(ids, found)
    ]
    return DatasetListing(clips, skipped)


def _clip(where: str, clip_id: str, key: str, subset: str, entry: dict[str, Any]) -> Clip:
    visual_fake, audio_fake = _modified(where, entry)
    file = entry["file"]
    original = entry.get("original")
    source = original if isinstance(original, str) and original else file
    return Clip(
        clip_id=clip_id,
        source=key,
        label="fake" if visual_fake or audio_fake else "real",
        category=modification_category(visual_fake, audio_fake),
        visual_fake=visual_fake,
        audio_fake=audio_fake,
        identity=_person(source),
        split=SUBSETS[subset],
    )


def _person(source: str) -> str:
    """Who a source video shows: its VoxCeleb2 id, or its recording's folder."""
    folders = source.split("/")[:-1]
    speaker = next((part for part in folders if _VOXCELEB_ID.match(part)), None)
    if speaker is not None:
        return speaker
    if len(folders) >= 2:
        return "/".join(folders[:-1])
    return "/".join(folders) or source.rsplit(".", 1)[0]


def _modified(where: str, entry: dict[str, Any]) -> tuple[bool, bool]:
    """(visual_fake, audio_fake) from ``modify_type``, or from the two boolean flags."""
    if "modify_type" in entry:
        # The official loader spells one value with a hyphen ("both-modified"); accept both.
        kind = str(entry["modify_type"]).replace("-", "_")
        if kind not in MODIFY_TYPES:
            raise DatasetError(
                f"{where}: modify_type {entry['modify_type']!r} is not one of "
                f"{sorted(MODIFY_TYPES)}"
            )
        return MODIFY_TYPES[kind]
    return require_bool(where, entry, "modify_video"), require_bool(where, entry, "modify_audio")
