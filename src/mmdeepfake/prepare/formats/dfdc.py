"""DFDC (Deepfake Detection Challenge) training parts: ``dfdc_train_part_N/metadata.json``.

The root holds the ``dfdc_train_part_N`` folders, or is one of them. Each part has its videos
next to a ``metadata.json``::

    {"aagfhgtpmv.mp4": {"label": "FAKE", "split": "train", "original": "vudstovrck.mp4"},
     "vudstovrck.mp4": {"label": "REAL", "split": "train", "original": null}, ...}

DFDC gives no person ids and does not label which modality was manipulated (some fakes have
swapped voices, unmarked), so ``visual_fake``/``audio_fake`` stay unknown. A fake and the real
video it was made from show the same person, so both get the real video's name as their
``identity``: splits keep the pair together. Every listed ``split`` is ``train`` (the public
training set); the validation and test parts are carved from it by
:func:`mmdeepfake.prepare.splits.assign_splits`. A video no ``metadata.json`` lists, or an entry
whose video is missing, is reported as skipped; an entry with a label other than REAL/FAKE is
a DatasetError naming the file.

Checked against: the Kaggle competition's data description (train part folders, the
``metadata.json`` fields label/split/original), public DFDC preprocessing scripts that walk
``dfdc_train_part_*/metadata.json`` and pair fakes with ``original``.
"""

from __future__ import annotations

from mmdeepfake.data.storage import Storage
from mmdeepfake.errors import DatasetError
from mmdeepfake.prepare.clips import Clip, DatasetListing, register_format
from mmdeepfake.prepare.formats.common import id_part, read_json, stem, unique_ids

__all__ = ["METADATA", "dfdc_clips"]

METADATA = "metadata.json"
_LABELS = {"REAL": "real", "FAKE": "fake"}


@register_format("dfdc")
def dfdc_clips(storage: Storage) -> DatasetListing:
    """Every video a part's ``metadata.json`` labels, grouped with its original."""
    keys = storage.list()
    present = set(keys)
    parts = sorted(key[: -len(METADATA)] for key in keys if _is_part_metadata(key))
    if not parts:
        raise DatasetError(
            f"no {METADATA} under {storage.uri()}: give the folder holding the "
            "dfdc_train_part_N folders, or one of them"
        )
    entries: list[tuple[str, str, str]] = []  # (video key, label, group)
    skipped: list[str] = []
    listed: set[str] = set()
    for part in parts:
        metadata = read_json(storage, part + METADATA)
        if not isinstance(metadata, dict):
            raise DatasetError(f"{storage.uri(part + METADATA)} is not a JSON object")
        for name, entry in sorted(metadata.items()):
            key = part + name
            listed.add(key)
            label, original = _read_entry(storage.uri(part + METADATA), name, entry)
            if key not in present:
                skipped.append(f"{key}: listed in {part + METADATA} but missing")
                continue
            entries.append((key, label, stem(original or name)))
    for key in keys:
        folder = key.rsplit("/", 1)[0] + "/" if "/" in key else ""
        if key.lower().endswith(".mp4") and folder in parts and key not in listed:
            skipped.append(f"{key}: not listed in {folder + METADATA}")
    ids = unique_ids([id_part(stem(key)) for key, _label, _group in entries])
    clips = [
        Clip(clip_id, key, label, category=label, identity=group, split="train")
        for clip_id, (key, label, group) in zip(ids, entries)
    ]
    return DatasetListing(clips, skipped)


def _is_part_metadata(key: str) -> bool:
    """``metadata.json`` at the root (one part given) or one folder down (the parts' parent)."""
    return key == METADATA or (key.endswith("/" + METADATA) and key.count("/") == 1)


def _read_entry(where: str, name: str, entry: object) -> tuple[str, str | None]:
    """The clip label and the original video's name of one ``metadata.json`` entry."""
    if not isinstance(entry, dict) or entry.get("label") not in _LABELS:
        raise DatasetError(f"{where}: the entry {name!r} has no label REAL or FAKE")
    original = entry.get("original")
    if original is not None and not isinstance(original, str):
        raise DatasetError(f"{where}: the entry {name!r} has an 'original' that is not a name")
    return _LABELS[entry["label"]], original
