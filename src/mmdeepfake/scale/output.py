"""Where the Ray engine writes its records: one file in a local folder or under an S3 prefix.

The driver receives the records as the cluster streams them and writes them to
``OUT/records.jsonl`` (each line the JSON record the local engine writes) or
``OUT/records.parquet`` (the columns of :data:`mmdeepfake.scale.scoring.RECORD_SCHEMA`). A
record is a few kilobytes, so one writer keeps up with any cluster, and a local ``OUT`` is on
the machine the command runs on, not on whichever worker wrote a block. On S3 the file is a
multipart upload that appears only when it is complete.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from mmdeepfake.errors import ConfigError
from mmdeepfake.scale.cluster import filesystem
from mmdeepfake.scale.scoring import RECORD_SCHEMA, records_table

FORMATS = ("jsonl", "parquet")


class RecordWriter:
    """Open with :meth:`open` (which checks the target), ``write`` tables, then ``close``."""

    def __init__(self, fmt: str, stream: Any, uri: str, fs: Any = None, path: str = "") -> None:
        self.fmt = fmt
        self.uri = uri
        self.written = 0
        self._stream = stream
        self._fs = fs
        self._path = path
        self._parquet = pq.ParquetWriter(stream, RECORD_SCHEMA) if fmt == "parquet" else None

    @classmethod
    def open(cls, out: str, fmt: str, endpoint_url: str | None = None) -> RecordWriter:
        """A writer of ``out/records.<fmt>``; a local folder is created.

        Raises:
            ConfigError: an unknown format, a missing bucket, or a target that cannot be written.
        """
        if fmt not in FORMATS:
            raise ConfigError(f"the Ray engine writes {' or '.join(FORMATS)}, not {fmt}")
        fs, folder = filesystem(out, endpoint_url)
        name = f"records.{fmt}"
        uri = f"{out.rstrip('/')}/{name}"
        try:
            if out.startswith("s3://"):
                bucket = folder.split("/", 1)[0]
                if fs.get_file_info(bucket).type == pa.fs.FileType.NotFound:
                    raise ConfigError(f"--output {out}: the bucket {bucket} does not exist")
            else:
                fs.create_dir(folder, recursive=True)
            path = f"{folder}/{name}"
            stream = fs.open_output_stream(path)
        except OSError as exc:
            raise ConfigError(f"--output {out}: cannot write {uri}: {exc}") from None
        return cls(fmt, stream, uri, fs, path)

    def write(self, table: pa.Table) -> None:
        """Append records (a table with the columns of ``RECORD_SCHEMA``)."""
        self.written += table.num_rows
        if self._parquet is not None:
            self._parquet.write_table(table.select(RECORD_SCHEMA.names).cast(RECORD_SCHEMA))
            return
        lines = "".join(f"{text}\n" for text in table.column("record").to_pylist())
        self._stream.write(lines.encode())

    def write_record(self, record: dict[str, Any]) -> None:
        """Append one record built on the driver (an input no worker could score)."""
        self.write(records_table([record]))

    def close(self) -> None:
        """Finish the file (on S3: complete the upload, so the object appears)."""
        if self._parquet is not None:
            self._parquet.close()
        self._stream.close()

    def discard(self) -> None:
        """Close and remove the file: a run that failed before its first record leaves none."""
        self.close()
        self._fs.delete_file(self._path)
