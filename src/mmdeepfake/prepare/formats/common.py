"""What the dataset adapters share: layout-safe clip ids and strict reading of metadata files."""

from __future__ import annotations

import json
import re
from collections import defaultdict
from typing import Any

from mmdeepfake.data.storage import KeyNotFoundError, Storage
from mmdeepfake.errors import DatasetError

__all__ = [
    "id_part",
    "modification_category",
    "read_json",
    "require_bool",
    "stem",
    "unique_ids",
]

_UNSAFE = re.compile(r"[^A-Za-z0-9]+")


def id_part(text: str) -> str:
    """``text`` with every run of characters other than letters and digits turned into ``-``.

    ``00109_3`` becomes ``00109-3``: readable, and free of the ``_<digits>`` ending the layout
    reads as a frame number. Distinct names can meet here (``a_b`` and ``a-b``);
    :func:`unique_ids` settles that.
    """
    return _UNSAFE.sub("-", text).strip("-") or "x"


def unique_ids(bases: list[str]) -> list[str]:
    """One id per base, unique by construction and layout-safe.

    A base shared by several entries (only odd file names make one) keeps it for none of
    them: each gets the base plus ``-1``, ``-2``... in entry order, skipping every id already
    taken, so no renamed entry can land on another entry's id.
    """
    counts: dict[str, int] = defaultdict(int)
    for base in bases:
        counts[base] += 1
    taken = {base for base, count in counts.items() if count == 1}
    ids = []
    for base in bases:
        if counts[base] == 1:
            ids.append(base)
            continue
        number = 1
        while f"{base}-{number}" in taken:
            number += 1
        ids.append(f"{base}-{number}")
        taken.add(ids[-1])
    return ids


def stem(key: str) -> str:
    """The file name of ``key`` without folder and suffix: ``a/b/00109_3.mp4`` -> ``00109_3``."""
    name = key.rsplit("/", 1)[-1]
    return name.rsplit(".", 1)[0] if "." in name else name


def read_json(storage: Storage, key: str) -> Any:
    """The parsed JSON file ``key``; a missing or unparsable file is a DatasetError naming it."""
    try:
        text = storage.read_text(key)
    except KeyNotFoundError:
        raise DatasetError(
            f"{storage.uri(key)} is missing; give the dataset's own root folder"
        ) from None
    except UnicodeDecodeError:
        raise DatasetError(f"{storage.uri(key)} is not UTF-8 text") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DatasetError(
            f"{storage.uri(key)} is not valid JSON (line {exc.lineno}: {exc.msg})"
        ) from None


def modification_category(visual_fake: bool, audio_fake: bool) -> str:
    """The category of a clip by what was modified, in AV-Deepfake1M's ``modify_type`` words."""
    if visual_fake and audio_fake:
        return "both_modified"
    if visual_fake:
        return "visual_modified"
    return "audio_modified" if audio_fake else "real"


def require_bool(where: str, entry: dict[str, Any], field: str) -> bool:
    """``entry[field]`` when it is a JSON boolean; anything else is a DatasetError."""
    value = entry.get(field)
    if not isinstance(value, bool):
        raise DatasetError(f"{where}: {field!r} must be true or false, got {value!r}")
    return value
