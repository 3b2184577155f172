"""What a preparation run keeps at its destination, so a second run resumes instead of redoing.

``labels/manifest.jsonl`` holds one JSON line per finished clip (written, or skipped and why)
with the clip's labels; ``labels/prepare.json`` the settings the layout was made with; and
``labels/clips.csv`` the labels of every written clip, for training and evaluation. Objects in
S3 cannot be appended to, so the manifest is rewritten whole, every :data:`SAVE_EVERY` clips
and at the end: an interrupted run redoes at most those last clips. A file is only written
when its content changes, so re-running a finished preparation writes nothing.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from mmdeepfake.data.layout import CLIPS_CSV, PREPARE_MANIFEST, PREPARE_SETTINGS
from mmdeepfake.data.storage import Storage
from mmdeepfake.errors import ConfigError
from mmdeepfake.prepare.clips import Clip
from mmdeepfake.prepare.extract import WRITTEN, ClipOutcome

__all__ = ["CLIPS_COLUMNS", "MANIFEST", "SETTINGS", "Manifest"]

MANIFEST = PREPARE_MANIFEST
SETTINGS = PREPARE_SETTINGS
CLIPS_COLUMNS = (
    "clip_id",
    "split",
    "label",
    "category",
    "visual_fake",
    "audio_fake",
    "identity",
    "source",
)
SAVE_EVERY = 50


class Manifest:
    """The finished clips of a destination, loaded at start and saved as clips finish."""

    def __init__(self, dest: Storage, settings: Mapping[str, Any]) -> None:
        self.dest = dest
        self.records: dict[str, dict[str, Any]] = {}
        self._saved = ""
        self._unsaved = 0
        self._check_settings(dict(settings))
        if dest.exists(MANIFEST):
            self._saved = dest.read_text(MANIFEST)
            for line in self._saved.splitlines():
                if line.strip():
                    record = json.loads(line)
                    self.records[record["clip_id"]] = record

    def _check_settings(self, settings: dict[str, Any]) -> None:
        """A destination holds one preparation: refuse to mix in clips made differently."""
        text = json.dumps(settings, indent=2, sort_keys=True) + "\n"
        if not self.dest.exists(SETTINGS):
            self.dest.write_text(SETTINGS, text)
            return
        before = json.loads(self.dest.read_text(SETTINGS))
        if before != json.loads(text):
            changed = sorted(
                k for k in settings.keys() | before.keys() if settings.get(k) != before.get(k)
            )
            raise ConfigError(
                f"{self.dest.uri()} was prepared with other settings ({', '.join(changed)} "
                f"differ; see {SETTINGS}): give a new --output, or the same settings to resume"
            )

    def done(self, clip_id: str) -> bool:
        return clip_id in self.records

    def add(self, clip: Clip, outcome: ClipOutcome) -> None:
        """Record a finished clip; the manifest is saved every :data:`SAVE_EVERY` clips."""
        record = {**asdict(clip), "outcome": outcome.outcome, "frames": outcome.frames}
        self.records[clip.clip_id] = record
        self._unsaved += 1
        if self._unsaved >= SAVE_EVERY:
            self.save()

    def save(self) -> None:
        """Write the manifest and ``clips.csv`` where they changed."""
        self._unsaved = 0
        ordered = [self.records[key] for key in sorted(self.records)]
        text = "".join(json.dumps(record, sort_keys=True) + "\n" for record in ordered)
        if text != self._saved:
            self.dest.write_text(MANIFEST, text)
            self._saved = text
        clips = _clips_csv(record for record in ordered if record["outcome"] == WRITTEN)
        if not self.dest.exists(CLIPS_CSV) or self.dest.read_text(CLIPS_CSV) != clips:
            self.dest.write_text(CLIPS_CSV, clips)


def _clips_csv(records: Any) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CLIPS_COLUMNS)
    for record in records:
        writer.writerow([_cell(record[column]) for column in CLIPS_COLUMNS])
    return buffer.getvalue()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(int(value))
    return str(value)
