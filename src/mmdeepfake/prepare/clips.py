"""What a dataset adapter hands to preparation: one :class:`Clip` per video, and the registry
of adapters by format name.

An adapter reads a downloaded dataset's own tree and metadata (never its videos) from a
:class:`~mmdeepfake.data.storage.Storage` rooted at the dataset's folder and lists its clips
with the labels the dataset gives: the clip label, the dataset's category, which modality was
manipulated, the person shown and the dataset's own split where it has one. Preparation then
decodes each clip's video into the training layout (see :mod:`mmdeepfake.data.layout`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from mmdeepfake.data.storage import Storage
from mmdeepfake.errors import ConfigError, DatasetError

__all__ = [
    "CLIP_ID_PATTERN",
    "FORMATS",
    "Clip",
    "DatasetListing",
    "list_clips",
    "read_dataset",
    "register_format",
]

#: Clip ids are written into file names of the layout (``<clip>_<k>.jpg``, ``<clip>.wav``):
#: letters, digits and ``-`` only, so an id can never end in ``_<digits>`` and be mistaken for
#: a frame number, nor hold a path separator.
CLIP_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]*$")
LABELS = ("real", "fake")
SPLITS = ("train", "validate", "test")


@dataclass(frozen=True)
class Clip:
    """One video of a dataset and what the dataset says about it.

    Attributes:
        clip_id: unique across the dataset and layout-safe (:data:`CLIP_ID_PATTERN`).
        source: key of the video under the dataset root (as the adapter's storage lists it).
        label: ``"real"`` or ``"fake"`` for the clip as a whole.
        category: the dataset's own category (FakeAVCeleb ``"A"``-``"D"``, DFDC ``"real"`` /
            ``"fake"``, ...), used by per-category evaluation.
        visual_fake / audio_fake: whether the face / the voice was manipulated; ``None`` where
            the dataset does not say.
        identity: the person shown, for identity-disjoint splits; ``None`` where unknown.
        split: the dataset's official split (``train``, ``validate``, ``test``) or ``None``.
    """

    clip_id: str
    source: str
    label: str
    category: str
    visual_fake: bool | None = None
    audio_fake: bool | None = None
    identity: str | None = None
    split: str | None = None

    def __post_init__(self) -> None:
        if not CLIP_ID_PATTERN.match(self.clip_id):
            raise DatasetError(
                f"clip id {self.clip_id!r} is not layout-safe: use letters, digits and '-'"
            )
        if self.label not in LABELS:
            raise DatasetError(f"clip {self.clip_id}: label must be one of {LABELS}")
        if self.split is not None and self.split not in SPLITS:
            raise DatasetError(f"clip {self.clip_id}: split must be one of {SPLITS} or None")


@dataclass
class DatasetListing:
    """What an adapter found: the clips, and why anything else in the dataset was left out.

    Attributes:
        clips: one :class:`Clip` per usable video.
        skipped: one line per video or metadata entry that gave no clip, naming the file and
            the reason (a metadata row whose video is missing, a video no metadata labels, the
            unlabelled official test set...), so preparation can print how much was left out.
    """

    clips: list[Clip]
    skipped: list[str] = field(default_factory=list)


Adapter = Callable[[Storage], DatasetListing]
FORMATS: dict[str, Adapter] = {}


def register_format(name: str) -> Callable[[Adapter], Adapter]:
    """Register ``adapter(storage) -> DatasetListing`` under a ``--format`` name."""

    def add(adapter: Adapter) -> Adapter:
        FORMATS[name] = adapter
        return adapter

    return add


def read_dataset(format_name: str, storage: Storage) -> DatasetListing:
    """The clips of the dataset at ``storage`` and what was skipped, read by ``format_name``."""
    # The adapters register themselves on import; importing them here (not at module level)
    # keeps the adapters free to import this module.
    import mmdeepfake.prepare.formats  # noqa: F401

    adapter = FORMATS.get(format_name)
    if adapter is None:
        raise ConfigError(f"unknown dataset format {format_name!r}; known: {sorted(FORMATS)}")
    return adapter(storage)


def list_clips(format_name: str, storage: Storage) -> list[Clip]:
    """The clips of the dataset at ``storage`` read by the adapter ``format_name``."""
    return read_dataset(format_name, storage).clips
