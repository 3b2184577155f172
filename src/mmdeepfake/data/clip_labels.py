"""Per-clip ground truth from ``labels/clips.csv``, as ``mmdeepfake-prepare`` writes it.

One row per clip with the columns ``clip_id, split, label, category, visual_fake, audio_fake,
identity, source``: the dataset's own category (FakeAVCeleb ``A``-``D``, ...), whether the
face and the voice were manipulated (``true``/``false`` or ``1``/``0``, empty where the dataset
does not say), the person shown and the video the clip came from. Evaluation reads it to report
metrics per category and per modality; training reads it for the per-modality targets of the image
and audio heads (:meth:`ClipLabel.modality_targets`), and scores those heads on the validation
split against the same targets (:func:`head_targets`).

``mmdeepfake-synth`` writes a ``labels/clips.csv`` of its own (emotions and artefacts, no
``category`` column); :func:`read_clip_labels` returns None for it, as for a dataset without
the file, so evaluation of synthetic data is unchanged.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from mmdeepfake.data.layout import CLIPS_CSV, LABEL_NAMES, SPLITS, DatasetIndex
from mmdeepfake.data.storage import Storage
from mmdeepfake.errors import DatasetError

__all__ = [
    "CLIP_LABEL",
    "HEAD_LABEL_COLUMNS",
    "ClipLabel",
    "head_targets",
    "parse_clip_labels",
    "read_clip_labels",
]

REQUIRED_COLUMNS = ("clip_id", "split", "label", "category")
_BOOLEANS = {"true": True, "false": False, "1": True, "0": False, "": None}


@dataclass(frozen=True)
class ClipLabel:
    """What ``labels/clips.csv`` says about one clip (``None``: the dataset does not say)."""

    clip_id: str
    split: str
    label: str
    category: str
    visual_fake: bool | None = None
    audio_fake: bool | None = None
    identity: str | None = None
    source: str | None = None

    def modality_targets(self) -> tuple[int, int]:
        """``(image, audio)`` training targets: 1 fake, 0 real, -1 where the row does not say.

        The image head learns ``visual_fake`` and the audio head ``audio_fake``; an unknown
        value (-1) makes the loss fall back to the clip's label for that head.
        """
        return _target(self.visual_fake), _target(self.audio_fake)


#: The clips.csv column each one-modality head learns, and is scored against, where it is known.
HEAD_LABEL_COLUMNS: dict[str, str] = {"image": "visual_fake", "audio": "audio_fake"}
#: The name recorded for a head scored against the clip's (the fused head's) label.
CLIP_LABEL = "clip"


def head_targets(modality: str, labels: ArrayLike, own: ArrayLike) -> tuple[np.ndarray, str]:
    """The labels a ``modality`` head is scored against, and which labels they are.

    ``labels`` are the samples' clip labels (0 real, 1 fake) and ``own`` their per-modality
    targets (:meth:`ClipLabel.modality_targets`, -1 unknown). A head is scored against what it
    learns: its modality's own label where known, the clip's elsewhere, so a FakeAVCeleb
    category-B clip (real face, cloned voice) counts as real for the image head. The name says
    which labels were used: ``visual_fake`` / ``audio_fake`` (every sample's own), ``clip``
    (none known, as for a dataset without clips.csv) or ``visual_fake+clip`` (a mixture).
    """
    clip = np.asarray(labels, dtype=np.int64)
    own = np.asarray(own, dtype=np.int64)
    known = own >= 0
    column = HEAD_LABEL_COLUMNS[modality]
    if known.all() and known.size:
        name = column
    elif known.any():
        name = f"{column}+{CLIP_LABEL}"
    else:
        name = CLIP_LABEL
    return np.where(known, own, clip), name


def _target(flag: bool | None) -> int:
    return -1 if flag is None else int(flag)


def _flag(value: str, column: str, where: str) -> bool | None:
    try:
        return _BOOLEANS[value.strip().lower()]
    except KeyError:
        raise DatasetError(
            f"{where}: {column} is {value!r}; write true, false, 1, 0 or leave it empty"
        ) from None


def parse_clip_labels(text: str, *, source: str = CLIPS_CSV) -> dict[str, ClipLabel]:
    """``{clip_id: ClipLabel}`` from the text of a clips.csv; DatasetError naming a bad row.

    The header must hold ``clip_id, split, label, category``; ``visual_fake``, ``audio_fake``,
    ``identity`` and ``source`` are read where present. A clip id may appear once.
    """
    reader = csv.DictReader(io.StringIO(text))
    columns = [c.strip() for c in reader.fieldnames or []]
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise DatasetError(
            f"{source} has no column {', '.join(missing)} (header: {','.join(columns)!r}); "
            f"expected at least {','.join(REQUIRED_COLUMNS)}"
        )
    reader.fieldnames = columns
    table: dict[str, ClipLabel] = {}
    for line_no, row in enumerate(reader, start=2):
        cells = {k: (v or "").strip() for k, v in row.items() if k is not None}
        if not any(cells.values()):
            continue
        clip = cells["clip_id"]
        where = f"{source} line {line_no} (clip {clip or '?'})"
        if not clip:
            raise DatasetError(f"{where}: clip_id is empty")
        if clip in table:
            raise DatasetError(f"{where}: clip id {clip!r} appears twice; clip ids are unique")
        if cells["label"] not in LABEL_NAMES:
            raise DatasetError(f"{where}: label is {cells['label']!r}; use real or fake")
        if cells["split"] not in SPLITS:
            raise DatasetError(
                f"{where}: split is {cells['split']!r}; use one of {', '.join(SPLITS)}"
            )
        if not cells["category"]:
            raise DatasetError(f"{where}: category is empty")
        table[clip] = ClipLabel(
            clip_id=clip,
            split=cells["split"],
            label=cells["label"],
            category=cells["category"],
            visual_fake=_flag(cells.get("visual_fake", ""), "visual_fake", where),
            audio_fake=_flag(cells.get("audio_fake", ""), "audio_fake", where),
            identity=cells.get("identity") or None,
            source=cells.get("source") or None,
        )
    return table


def read_clip_labels(storage: Storage, index: DatasetIndex) -> dict[str, ClipLabel] | None:
    """The clips.csv of a scanned dataset, or None when it has none or it is synth's own.

    A file without a ``category`` column is ``mmdeepfake-synth``'s per-clip record, which
    carries no categories; any other file must be valid (:func:`parse_clip_labels`).
    """
    key = index.prefix + CLIPS_CSV
    if not storage.exists(key):
        return None
    text = storage.read_bytes(key).decode("utf-8-sig")
    header = next(csv.reader(io.StringIO(text)), [])
    if "category" not in (cell.strip() for cell in header):
        return None
    return parse_clip_labels(text, source=storage.uri(key))
