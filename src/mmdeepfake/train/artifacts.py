"""Where a run's outputs go, and how checkpoints are written and read back safely.

Everything is written through a :class:`~mmdeepfake.data.storage.Storage` rooted at the outputs
location (``s3://BUCKET/outputs/`` or a local folder), one folder per run id::

    <run_id>/models/checkpoints/epoch_0003.pt   training state after each epoch
    <run_id>/models/checkpoints/latest.json     which checkpoint to resume from
    <run_id>/models/best/                       the best Detector (config.json, model.safetensors)
    <run_id>/logs/train.log, logs/metrics.csv
    <run_id>/plots/NN_name.png
    <run_id>/intermediate/val_predictions.csv, intermediate/memory.csv

Checkpoints are ``torch.save`` bytes holding only tensors, numbers, strings, lists and dicts
(JSON text for the config and history), so they load with ``torch.load(weights_only=True)``:
nothing is unpickled from the bucket. ``latest.json`` is written after the checkpoint it points
to, so a crash during an upload never leaves a pointer to a half-written file.
"""

from __future__ import annotations

import io
import json
import random
import re
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmdeepfake.data.storage import Storage
from mmdeepfake.errors import CheckpointError, ConfigError
from mmdeepfake.model_card import build_model_card

CHECKPOINT_FORMAT = 1
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def new_run_id() -> str:
    """A sortable, unique run id: UTC time plus a short random suffix."""
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + uuid.uuid4().hex[:6]


def check_run_id(run_id: str) -> str:
    if not _RUN_ID.match(run_id):
        raise ConfigError(f"invalid run id {run_id!r}: use letters, digits, '.', '_' and '-' only")
    return run_id


# --- RNG state ---------------------------------------------------------------------------------


def capture_rng_state() -> dict[str, Any]:
    """Torch, CUDA, NumPy and Python RNG states as weights_only-loadable values."""
    np_state: Any = np.random.get_state()  # the legacy tuple form
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "kind": str(np_state[0]),
            "keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": json.dumps(random.getstate()),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"].cpu())
    n = state["numpy"]
    np.random.set_state(
        (
            n["kind"],
            n["keys"].numpy().astype(np.uint32),
            n["pos"],
            n["has_gauss"],
            n["cached_gaussian"],
        )
    )
    version, internal, gauss = json.loads(state["python"])
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([t.cpu() for t in state["cuda"]])


# --- checkpoint bytes --------------------------------------------------------------------------


def checkpoint_to_bytes(state: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    torch.save({"format": CHECKPOINT_FORMAT, **state}, buf)
    return buf.getvalue()


def checkpoint_from_bytes(data: bytes, where: str) -> dict[str, Any]:
    """Load checkpoint bytes with ``weights_only=True`` (no arbitrary unpickling)."""
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure means an unusable checkpoint
        raise CheckpointError(
            f"cannot load the checkpoint {where}: {type(exc).__name__}: {exc}; it may be "
            "truncated or not an mmdeepfake checkpoint. Start a new run without --resume"
        ) from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{where} is not an mmdeepfake training checkpoint")
    return state


class RunArtifacts:
    """The output folder of one run. Writes only on the main rank (others are no-ops)."""

    def __init__(self, storage: Storage, run_id: str, *, writer: bool = True) -> None:
        self.storage = storage
        self.run_id = check_run_id(run_id)
        self.writer = writer

    def key(self, *parts: str) -> str:
        return "/".join((self.run_id, *parts))

    def uri(self, *parts: str) -> str:
        return self.storage.uri(self.key(*parts))

    def write_bytes(self, kind: str, name: str, data: bytes) -> None:
        if self.writer:
            self.storage.write_bytes(self.key(kind, name), data)

    def write_text(self, kind: str, name: str, text: str) -> None:
        self.write_bytes(kind, name, text.encode("utf-8"))

    # -- checkpoints ------------------------------------------------------------------------

    def save_checkpoint(self, state: dict[str, Any], name: str) -> str:
        """Upload a checkpoint, then point ``latest.json`` at it; returns its key."""
        key = self.key("models", "checkpoints", name)
        if self.writer:
            self.storage.write_bytes(key, checkpoint_to_bytes(state))
            pointer = {
                "key": key,
                "name": name,
                "epoch": int(state["epoch"]),
                "step_in_epoch": int(state.get("step_in_epoch", 0)),
                "saved_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
            self.storage.write_text(
                self.key("models", "checkpoints", "latest.json"), json.dumps(pointer, indent=2)
            )
        return key

    def load_latest_checkpoint(self) -> dict[str, Any]:
        pointer_key = self.key("models", "checkpoints", "latest.json")
        if not self.storage.exists(pointer_key):
            raise CheckpointError(
                f"run {self.run_id} has no checkpoint at {self.storage.uri(pointer_key)}; "
                "check the run id (see the outputs folder) or start a new run"
            )
        try:
            pointer = json.loads(self.storage.read_text(pointer_key))
            key = str(pointer["key"])
        except (ValueError, KeyError, TypeError):
            raise CheckpointError(
                f"{self.storage.uri(pointer_key)} is damaged; start a new run"
            ) from None
        return checkpoint_from_bytes(self.storage.read_bytes(key), self.storage.uri(key))

    # -- the best model ---------------------------------------------------------------------

    def save_detector(self, detector: Any, folder: str = "best") -> str:
        """``Detector.save_pretrained`` into a temporary folder, with the model card as
        README.md, then upload its files."""
        if self.writer:
            with tempfile.TemporaryDirectory(prefix="mmdeepfake-model-") as tmp:
                detector.save_pretrained(tmp)
                Path(tmp, "README.md").write_text(build_model_card(detector.config.to_dict()))
                for path in sorted(Path(tmp).iterdir()):
                    if path.is_file():
                        self.storage.write_bytes(
                            self.key("models", folder, path.name), path.read_bytes()
                        )
        return self.uri("models", folder)


def find_latest_run(storage: Storage) -> str:
    """The run under the outputs root whose latest checkpoint was saved most recently."""
    pointers = [key for key in storage.list("") if key.endswith("/models/checkpoints/latest.json")]
    if not pointers:
        raise CheckpointError(
            f"--resume latest found no run with a checkpoint under {storage.uri()}; start a new "
            "run without --resume, or check --output / --bucket"
        )
    dated = []
    for key in pointers:
        try:
            saved_at = str(json.loads(storage.read_text(key)).get("saved_at", ""))
        except ValueError:
            saved_at = ""
        dated.append((saved_at, key.split("/", 1)[0]))
    return max(dated)[1]
