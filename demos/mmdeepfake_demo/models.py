"""Which detectors the page runs, and what it tells people about them.

A page session picks a *model spec*: ``"starter"`` (the bundled model), a local folder or a
Hugging Face Hub id. A spec loads into a :class:`LoadedModel`: one detector, or — for a folder
whose sub-folders each hold a saved detector, such as the output of a fusion sweep — one
detector per fusion strategy, so the page can offer the strategy as a setting. Loaded models
are shared by every session through a small :class:`ModelStore` cache, because each weighs
tens of megabytes and takes seconds to load.
"""

from __future__ import annotations

import html
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmdeepfake.errors import CheckpointError, MmDeepfakeError

if TYPE_CHECKING:
    from mmdeepfake import Detector

STARTER = "starter"
UNTRAINED = "untrained"

STARTER_NOTE = (
    "The starter model was trained **only on synthetic data**: procedurally drawn cartoon "
    "faces and synthetic voice-like sounds, where a *fake* is a clip whose face and voice show "
    "different emotions. It demonstrates the pipeline end to end; it has never seen a real "
    "person or a real deepfake, so its verdicts on real media are illustrations, not evidence."
)
UNTRAINED_NOTE = (
    "**No trained model is loaded**: this detector has random weights, so its verdicts and "
    "emotions carry no information. The page still shows every step of the analysis. Load a "
    "trained model in the *Model* tab."
)


@dataclass
class LoadedModel:
    """One model spec, loaded: the detectors it offers, keyed by fusion strategy."""

    spec: str
    detectors: dict[str, Detector]
    notice: str | None = None  # why this model is shown instead of the one asked for

    @property
    def fusions(self) -> list[str]:
        return list(self.detectors)

    @property
    def default(self) -> Detector:
        return next(iter(self.detectors.values()))

    def detector(self, fusion: str | None) -> Detector:
        """The detector for a fusion strategy (the first one when none is named)."""
        if fusion is None or fusion == "":
            return self.default
        if fusion not in self.detectors:
            raise CheckpointError(
                f"the loaded model has no {fusion!r} fusion; choose one of {self.fusions}"
            )
        return self.detectors[fusion]

    def describe(self) -> str:
        """Markdown that says which model is loaded and how far to trust it."""
        det = self.default
        config = det.config
        lines = [f"**Model:** `{self.spec}`"]
        if self.notice:
            lines.append(f"> **Notice:** {html.escape(self.notice)}")
        lines.append(
            f"image encoder `{config['image_encoder']}` · audio encoder "
            f"`{config['audio_encoder']}` · fusion {', '.join(f'`{f}`' for f in self.fusions)} · "
            f"threshold {det.threshold:.2f} · temperature {det.temperature:.2f}"
        )
        facts = _metadata_facts(det.metadata)
        if facts:
            lines.append(" · ".join(facts))
        if self.spec == STARTER:
            lines.append(STARTER_NOTE)
        elif self.spec == UNTRAINED:
            lines.append(UNTRAINED_NOTE)
        return "\n\n".join(lines)


def _metadata_facts(metadata: dict[str, Any]) -> list[str]:
    """Short, printable facts from a checkpoint's metadata (training data, headline metrics)."""
    facts = []
    for key, value in metadata.items():
        if isinstance(value, float):
            facts.append(f"{key} {value:.3g}")
        elif isinstance(value, (str, int, bool)) and len(str(value)) <= 80:
            facts.append(f"{key}: {value}")
    return facts[:8]


def load_model(spec: str | None) -> LoadedModel:
    """Load ``"starter"`` (the default), a saved-detector folder, a folder of them, or a hub id.

    Raises:
        CheckpointError: the spec names nothing loadable; the message says what was tried.
    """
    from mmdeepfake import Detector

    spec = (spec or STARTER).strip()
    if spec == STARTER:
        detector = Detector.starter()
        return LoadedModel(STARTER, {detector.fusion_name: detector})
    folder = Path(spec).expanduser()
    if folder.is_dir() and not (folder / "config.json").is_file():
        return LoadedModel(spec, _load_family(folder))
    detector = Detector.from_pretrained(spec)
    return LoadedModel(spec, {detector.fusion_name: detector})


def _load_family(folder: Path) -> dict[str, Detector]:
    """One detector per sub-folder holding a config.json, keyed by its fusion strategy."""
    from mmdeepfake import Detector

    members = sorted(p for p in folder.iterdir() if (p / "config.json").is_file())
    if not members:
        raise CheckpointError(
            f"{str(folder)!r} holds no config.json, neither itself nor in a sub-folder; give a "
            "folder written by Detector.save_pretrained, or a folder of such folders"
        )
    detectors: dict[str, Detector] = {}
    for member in members:
        detector = Detector.from_pretrained(member)
        name = detector.fusion_name
        detectors[name if name not in detectors else f"{name} ({member.name})"] = detector
    return detectors


def untrained_model(notice: str) -> LoadedModel:
    """A randomly initialised detector, so the page works when no trained model is available."""
    from mmdeepfake import Detector

    detector = Detector()
    return LoadedModel(UNTRAINED, {detector.fusion_name: detector}, notice=notice)


class ModelStore:
    """Loaded models shared by all page sessions, least recently used dropped first.

    The model the page started with is pinned: a session that never loads another one always
    finds it. ``get`` is thread-safe and loads each spec once even under concurrent requests.
    """

    def __init__(self, initial: LoadedModel, capacity: int = 3) -> None:
        self.initial = initial
        self.capacity = max(1, capacity)
        self._models: OrderedDict[str, LoadedModel] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, spec: str | None) -> LoadedModel:
        """The model for a spec, loading it on first use (raises CheckpointError)."""
        if spec is None or spec == self.initial.spec:
            return self.initial
        spec = spec.strip()
        with self._lock:
            if spec in self._models:
                self._models.move_to_end(spec)
                return self._models[spec]
            try:
                model = load_model(spec)
            except MmDeepfakeError:
                raise
            except Exception as exc:  # a broken checkpoint can fail in many ways below us
                raise CheckpointError(f"could not load a model from {spec!r}: {exc}") from exc
            self._models[spec] = model
            while len(self._models) > self.capacity:
                self._models.popitem(last=False)
            return model
