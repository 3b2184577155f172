"""FakeAVCeleb v1.2: four category folders of ``<race>/<gender>/<idXXXXX>/*.mp4`` and a CSV.

The root is the ``FakeAVCeleb_v1.2`` folder::

    RealVideo-RealAudio/African/men/id00076/00109.mp4            category A: real
    RealVideo-FakeAudio/African/men/id00076/00109_fake.mp4       B: cloned voice
    FakeVideo-RealAudio/African/men/id00076/00109_id00476_wavtolip.mp4   C: swapped face
    FakeVideo-FakeAudio/African/men/id00076/...                  D: both
    meta_data.csv

``meta_data.csv`` has the columns ``source,target1,target2,method,category,type,race,gender,
path,`` - the header ends with a comma, so the last column has no name: it holds the folder of
the video (``FakeAVCeleb/RealVideo-RealAudio/African/men/id00076``) while ``path`` holds only
the file name. Fake file names carry the ids of the other people used to make them, so the
person shown is taken from the identity folder, never from the name. The category folder is
the truth for the labels (A-D as in the dataset's paper); a video without a CSV row is read
from its folder names alone; a CSV row whose video is missing is reported as skipped; a row
that contradicts its folder, or cannot be read, is a DatasetError naming the CSV line.

Checked against: the dataset's README and request form (github DASH-Lab/FakeAVCeleb), public
loaders that read ``meta_data.csv`` with pandas (where the unnamed last column shows up as
``Unnamed: 9`` and the video is ``<that column>/<path>``), and the layout described in the
issue. No copy of the dataset was reachable here, so the exact file-name patterns of the fake
categories are not relied on.
"""

from __future__ import annotations

import csv
import io

from mmdeepfake.data.storage import KeyNotFoundError, Storage
from mmdeepfake.errors import DatasetError
from mmdeepfake.prepare.clips import Clip, DatasetListing, register_format
from mmdeepfake.prepare.formats.common import id_part, stem, unique_ids

__all__ = ["CATEGORIES", "METADATA", "fakeavceleb_clips"]

METADATA = "meta_data.csv"

#: category folder -> (category, visual_fake, audio_fake)
CATEGORIES: dict[str, tuple[str, bool, bool]] = {
    "RealVideo-RealAudio": ("A", False, False),
    "RealVideo-FakeAudio": ("B", False, True),
    "FakeVideo-RealAudio": ("C", True, False),
    "FakeVideo-FakeAudio": ("D", True, True),
}
_NAMED_COLUMNS = ("source", "target1", "target2", "method", "category", "type")
_VIDEO_SUFFIXES = (".mp4",)

# (category folder, race, gender, identity, file name): the place of one video in the tree.
_Place = tuple[str, str, str, str, str]


@register_format("fakeavceleb")
def fakeavceleb_clips(storage: Storage) -> DatasetListing:
    """Every video under the four category folders, labelled by its folder, one clip each."""
    rows = _read_rows(storage)
    places: dict[_Place, str] = {}
    skipped: list[str] = []
    for folder in CATEGORIES:
        for key in storage.list(folder + "/"):
            if not key.lower().endswith(_VIDEO_SUFFIXES):
                continue
            parts = key.split("/")
            if len(parts) != 5:
                skipped.append(f"{key}: not at <category>/<race>/<gender>/<identity>/<file>")
                continue
            places[(parts[0], parts[1], parts[2], parts[3], parts[4])] = key
    for place, line in rows.items():
        if place not in places:
            skipped.append(f"{METADATA} line {line}: {'/'.join(place)} is not in the tree")
    if not places:
        raise DatasetError(
            f"no videos under {storage.uri()}: expected the FakeAVCeleb_v1.2 folder holding "
            f"{', '.join(CATEGORIES)}"
        )
    # Category A to D, then race, gender, person and file: the order the dataset lists them.
    ordered = sorted(places.items(), key=lambda item: (CATEGORIES[item[0][0]][0], item[0]))
    bases = []
    for (folder, _race, _gender, identity, name), _key in ordered:
        category = CATEGORIES[folder][0]
        bases.append(f"{category}-{id_part(identity)}-{id_part(stem(name))}")
    clips = []
    for clip_id, ((folder, _race, _gender, identity, _name), key) in zip(
        unique_ids(bases), ordered
    ):
        category, visual_fake, audio_fake = CATEGORIES[folder]
        clips.append(
            Clip(
                clip_id=clip_id,
                source=key,
                label="fake" if visual_fake or audio_fake else "real",
                category=category,
                visual_fake=visual_fake,
                audio_fake=audio_fake,
                identity=identity,
            )
        )
    return DatasetListing(clips, skipped)


def _read_rows(storage: Storage) -> dict[_Place, int]:
    """The CSV's rows as tree places -> line numbers; an absent CSV gives none."""
    try:
        text = storage.read_text(METADATA)
    except KeyNotFoundError:
        return {}
    except UnicodeDecodeError:
        raise DatasetError(f"{storage.uri(METADATA)} is not UTF-8 text") from None
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None or tuple(h.strip() for h in header[: len(_NAMED_COLUMNS)]) != _NAMED_COLUMNS:
        raise DatasetError(
            f"{storage.uri(METADATA)} does not start with the FakeAVCeleb header "
            f"{','.join(_NAMED_COLUMNS)},...: is this the FakeAVCeleb_v1.2 folder?"
        )
    columns = [h.strip() for h in header]
    if "path" not in columns:
        raise DatasetError(f"{storage.uri(METADATA)} has no 'path' column")
    path_at, category_at, type_at = (columns.index(c) for c in ("path", "category", "type"))
    # The header's trailing comma leaves the folder column unnamed: the last one.
    folder_at = len(columns) - 1
    rows: dict[_Place, int] = {}
    for line, row in enumerate(reader, start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(columns):
            raise DatasetError(
                f"{storage.uri(METADATA)} line {line}: {len(row)} fields, the header has "
                f"{len(columns)}"
            )
        folder = row[folder_at].strip().strip("/").split("/")
        if len(folder) < 4 or folder[-4] not in CATEGORIES:
            raise DatasetError(
                f"{storage.uri(METADATA)} line {line}: the last column {row[folder_at]!r} is "
                "not a <category>/<race>/<gender>/<identity> folder"
            )
        category_folder = folder[-4]
        expected = CATEGORIES[category_folder][0]
        if row[type_at].strip() != category_folder or row[category_at].strip() != expected:
            raise DatasetError(
                f"{storage.uri(METADATA)} line {line}: type {row[type_at]!r} / category "
                f"{row[category_at]!r} contradict the folder {category_folder} "
                f"(category {expected})"
            )
        place = (category_folder, folder[-3], folder[-2], folder[-1], row[path_at].strip())
        rows[place] = line
    return rows
