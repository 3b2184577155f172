"""What one training run reads and writes: its dataset, its outputs folder, its log files.

A :class:`RunContext` is opened before the model is built, so a missing folder, an empty split
or an unreadable bucket fails in seconds. It knows the run id (a new one, or the one being
resumed), keeps the log lines of this process and, for a resumed run, those written before,
so ``logs/train.log`` and ``intermediate/memory.csv`` cover the whole run.
"""

from __future__ import annotations

import csv
import io
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmdeepfake.data.clip_labels import ClipLabel, read_clip_labels
from mmdeepfake.data.layout import CLIPS_CSV, PREPARE_SETTINGS, DatasetIndex, scan_dataset
from mmdeepfake.data.storage import Storage, open_storage
from mmdeepfake.data.video_samples import Sample, split_samples
from mmdeepfake.errors import ConfigError
from mmdeepfake.outputs import output_root
from mmdeepfake.train import distributed as D
from mmdeepfake.train.artifacts import RunArtifacts, find_latest_run, new_run_id
from mmdeepfake.train.config import TrainConfig
from mmdeepfake.train.tables import csv_table

log = logging.getLogger("mmdeepfake.train")

METRIC_COLUMNS = (
    "epoch",
    "train_loss",
    "val_loss",
    "train_accuracy",
    "val_accuracy",
    "val_auc",
    "val_auc_image",
    "val_auc_audio",
    "val_auc_image_label",
    "val_auc_audio_label",
    "val_face_emotion_accuracy",
    "val_voice_emotion_accuracy",
    "lr",
    "batch_size",
    "seconds",
    "samples_per_s",
    "skipped_samples",
    "faces_not_detected",
)
# The validation scores saved with the model: the verdict's and each head's (the emotion
# accuracies stay in the metrics log).
SAVED_VAL_METRICS = tuple(
    c for c in METRIC_COLUMNS if c.startswith("val_") and not c.endswith("_emotion_accuracy")
)
PREDICTIONS_FILE = "val_predictions.csv"


def output_storage(config: TrainConfig) -> Storage:
    """The storage run folders go to (see :func:`mmdeepfake.outputs.output_root`)."""
    return open_storage(output_root(config.output, config.bucket), endpoint_url=config.endpoint_url)


class LogCapture:
    """Collects the run's log lines in memory; they are uploaded to logs/train.log.

    Console output is left to the application's logging set-up (the CLI logs INFO to stderr
    on rank 0 and warnings only on the other ranks).
    """

    def __init__(self) -> None:
        self.buffer = io.StringIO()
        self.handler = logging.StreamHandler(self.buffer)
        self.handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S")
        )
        self.logger = logging.getLogger("mmdeepfake")
        self._old_level = self.logger.level

    def __enter__(self) -> LogCapture:  # noqa: PYI034
        self.logger.setLevel(logging.INFO)
        self.logger.addHandler(self.handler)
        return self

    def __exit__(self, *exc: object) -> None:
        self.logger.removeHandler(self.handler)
        self.logger.setLevel(self._old_level)

    def text(self) -> str:
        return self.buffer.getvalue()


@dataclass
class RunContext:
    """The data and the outputs of one run (one fusion strategy, one run id).

    ``config`` is the run's configuration; a resumed run replaces its architecture keys with
    those of its checkpoint. Only the main rank writes files.
    """

    config: TrainConfig
    dist: D.DistInfo
    data: Storage
    index: DatasetIndex
    val_samples: list[Sample]
    out_storage: Storage
    out: RunArtifacts
    previous_log: str = ""
    previous_memory_rows: list[str] = field(default_factory=list)
    #: labels/clips.csv (``mmdeepfake-prepare``'s), for the per-modality targets of the heads
    clip_labels: dict[str, ClipLabel] | None = None

    @classmethod
    def open(cls, config: TrainConfig, dist: D.DistInfo) -> RunContext:
        """Scan the dataset (both splits must have pairs) and pick the run id."""
        if config.bucket:
            data = open_storage(f"s3://{config.bucket}/", endpoint_url=config.endpoint_url)
            prefix = config.prefix
        else:
            assert config.data_dir is not None  # check_source: a bucket or a folder
            root = Path(config.data_dir).expanduser()
            if not root.is_dir():
                raise ConfigError(
                    f"--data {config.data_dir}: no such folder; give the folder "
                    "that holds frames/, audio/ (and labels/emotions.csv)"
                )
            data = open_storage(root)
            prefix = config.prefix if (root / config.prefix).is_dir() else ""
        index = scan_dataset(data, prefix)
        clip_labels = read_clip_labels(data, index)
        val_samples = split_samples(index, "validate", config.seed, clip_labels=clip_labels)
        # Fails now, not after set-up, if empty.
        split_samples(index, "train", config.seed, clip_labels=clip_labels)
        log.info("dataset %s", data.uri(index.prefix))
        for line in index.summary().splitlines():  # one log event per line of the log
            log.info("dataset %s", line)

        out_storage = output_storage(config)
        if dist.is_main:
            out_storage.ensure_bucket()
        run_id = config.run_id
        if config.resume and dist.is_main:
            run_id = find_latest_run(out_storage) if config.resume == "latest" else config.resume
        run_id = D.broadcast_object(run_id or new_run_id())
        out = RunArtifacts(out_storage, run_id, writer=dist.is_main)
        return cls(
            config, dist, data, index, val_samples, out_storage, out, clip_labels=clip_labels
        )

    def train_samples(self, seed: int) -> list[Sample]:
        """The train split's pairs drawn with ``seed`` and its videos without extracted frames,
        with the heads' per-modality targets."""
        return split_samples(self.index, "train", seed, clip_labels=self.clip_labels)

    def read_previous_logs(self) -> None:
        """Keep what a resumed run wrote before, so its log files continue, not restart."""
        key = self.out.key("logs", "train.log")
        if self.out_storage.exists(key):
            self.previous_log = self.out_storage.read_text(key)
        key = self.out.key("intermediate", "memory.csv")
        if self.out_storage.exists(key):
            self.previous_memory_rows = self.out_storage.read_text(key).splitlines()[1:]

    def write_logs(
        self, capture: LogCapture, history: list[dict[str, Any]], memory_csv: str
    ) -> None:
        """logs/train.log, logs/metrics.csv and intermediate/memory.csv, as of now."""
        if not self.dist.is_main:
            return
        self.out.write_text("logs", "train.log", self.previous_log + capture.text())
        self.out.write_text("logs", "metrics.csv", csv_table(history, METRIC_COLUMNS))
        memory = memory_csv.splitlines()
        rows = memory[:1] + self.previous_memory_rows + memory[1:]
        self.out.write_text("intermediate", "memory.csv", "\n".join(rows) + "\n")

    def best_predictions(self) -> list[dict[str, str]]:
        """The validation predictions of the best epoch (written when it was saved)."""
        text = self.out_storage.read_text(self.out.key("intermediate", PREDICTIONS_FILE))
        return list(csv.DictReader(io.StringIO(text)))

    def model_metadata(self, row: dict[str, Any]) -> dict[str, Any]:
        """What a saved model records about its training: data, epoch, metrics, settings."""
        where = self.data.uri(self.index.prefix)
        # mmdeepfake-synth and mmdeepfake-prepare write labels/clips.csv; only a prepared
        # dataset has labels/prepare.json, so clips.csv alone marks synthetic data.
        synthetic = self.data.exists(self.index.prefix + CLIPS_CSV) and not self.data.exists(
            self.index.prefix + PREPARE_SETTINGS
        )
        return {
            "run_id": self.out.run_id,
            "trained_on": where,
            "training_data": (
                f"mmdeepfake-synth synthetic faces and voices at {where}"
                if synthetic
                else f"the dataset at {where}"
            ),
            "synthetic_data": synthetic,
            "epoch": row["epoch"],
            "val_metrics": {k: row.get(k) for k in SAVED_VAL_METRICS if row.get(k) is not None},
            "training": {
                k: getattr(self.config, k)
                for k in (
                    "epochs",
                    "batch_size",
                    "lr",
                    "weight_decay",
                    "emotion_weight",
                    "consistency_weight",
                    "seed",
                )
            },
        }
