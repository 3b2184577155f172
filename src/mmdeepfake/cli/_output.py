"""Where `mmdeepfake predict` writes its records, opened before the first input is scored.

A batch can run for hours; an output that cannot be written must be found at the start, and
records already produced must survive an interrupt. JSONL and CSV are streamed, one record per
line as it is produced. JSON is one document, so it goes to a temporary file beside the target
that replaces the target atomically when the run ends, interrupted or not: a reader never sees
half a document.
"""

from __future__ import annotations

import csv
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import TextIO

from mmdeepfake.errors import ConfigError

CSV_FIELDS = (
    "source",
    "label",
    "fake_probability",
    "threshold",
    "consistency",
    "face_emotion",
    "voice_emotion",
    "image_score",
    "audio_score",
    "fusion",
    "modalities",
    "model",
    "warnings",
    "error",
)


def _csv_row(record: dict) -> dict:
    scores = record.get("modality_scores") or {}
    row = {field: record.get(field) for field in CSV_FIELDS}
    row["image_score"] = scores.get("image")
    row["audio_score"] = scores.get("audio")
    row["warnings"] = "; ".join(record.get("warnings") or [])
    row["modalities"] = " ".join(record.get("modalities") or [])
    model = record.get("model")
    row["model"] = f"{model['name']} (trained on {model['training_data']})" if model else None
    return row


class RecordSink:
    """Open with :meth:`open` (which checks the target), ``add`` records, then ``close``."""

    def __init__(self, fmt: str, stream: TextIO, target: Path | None, temp: Path | None):
        self.fmt = fmt
        self.stream = stream
        self.target = target
        self.temp = temp
        self.records: list[dict] = []
        self._csv: csv.DictWriter | None = None
        if fmt == "csv":
            self._csv = csv.DictWriter(stream, fieldnames=CSV_FIELDS)
            self._csv.writeheader()
            stream.flush()

    @classmethod
    def open(cls, fmt: str, out: str | None) -> RecordSink:
        """A sink on standard output, or on ``out`` after checking it can be written.

        Raises:
            ConfigError: the folder does not exist, or the file cannot be created or written.
        """
        if out is None:
            return cls(fmt, sys.stdout, None, None)
        target = Path(out)
        if target.is_dir():
            raise ConfigError(f"--output {out} is a folder; give a file name")
        try:
            if fmt == "json":
                handle, temp = tempfile.mkstemp(
                    prefix=f".{target.name}.", suffix=".partial", dir=target.parent
                )
                umask = os.umask(0)
                os.umask(umask)
                os.chmod(temp, 0o666 & ~umask)  # the permissions a plain open() would give
                stream = os.fdopen(handle, "w", newline="")
                return cls(fmt, stream, target, Path(temp))
            return cls(fmt, target.open("w", newline=""), target, None)
        except OSError as exc:
            raise ConfigError(
                f"cannot write --output {out}: {exc.strerror or exc}; nothing was scored"
            ) from exc

    def add(self, record: dict) -> None:
        self.records.append(record)
        if self.fmt == "jsonl":
            self.stream.write(json.dumps(record) + "\n")
        elif self._csv is not None:
            self._csv.writerow(_csv_row(record))
        else:
            return  # json: written whole by close()
        self.stream.flush()

    def discard(self) -> None:
        """Leave no partial JSON document behind when the run failed before any record."""
        if self.temp is not None:
            self.stream.close()
            self.temp.unlink(missing_ok=True)
            self.temp = None

    def close(self) -> None:
        """Finish the output: for JSON, write the document and move it into place."""
        if self.fmt == "json":
            json.dump(self.records, self.stream, indent=2)
            self.stream.write("\n")
        self.stream.flush()
        if self.stream is sys.stdout:
            return
        if self.temp is not None:
            os.fsync(self.stream.fileno())
        self.stream.close()
        if self.temp is not None and self.target is not None:
            os.replace(self.temp, self.target)
