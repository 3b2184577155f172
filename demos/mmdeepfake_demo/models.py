"""Which detectors the page runs, and what it tells people about them.

A page session picks a *model spec*: any spelling :func:`mmdeepfake.load_detector` takes
(``"starter"``, a local folder, ``hf-hub:ORG/NAME``, ``s3://...``). A spec loads into a
:class:`LoadedModel`: one detector, or — for a folder whose sub-folders each hold a saved
detector, such as the output of a fusion sweep — one detector per fusion strategy, so the page
can offer the strategy as a setting. Loaded models are shared by every session through a small
:class:`ModelStore` cache, because each weighs tens of megabytes and takes seconds to load.

Visitors reach only what the operator offered (a :class:`ModelCatalog`): the starter, the model
the page started with, folders under ``--models-dir``, and hub ids with ``--allow-hub``. Any
other name is refused with one message, whatever the server holds at that path, so the page
cannot be used to probe the server's folders or to load a crafted one.
"""

from __future__ import annotations

import dataclasses
import html
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from mmdeepfake.config_check import is_hub_id
from mmdeepfake.errors import LOCAL_MODEL_FOLDER, CheckpointError, MmDeepfakeError
from mmdeepfake.loading import HUB_PREFIX, STARTER

if TYPE_CHECKING:
    from mmdeepfake import Detector

log = logging.getLogger("mmdeepfake_demo")

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
            f"image encoder `{config.image_encoder}` · audio encoder "
            f"`{config.audio_encoder}` · fusion {', '.join(f'`{f}`' for f in self.fusions)} · "
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
    """Load ``"starter"`` (the default), any model spec of :func:`mmdeepfake.load_detector`, or
    a folder of saved-detector folders (one per fusion strategy).

    Raises:
        CheckpointError: the spec names nothing loadable; the message says what was tried.
        ConfigError: the spec is malformed; the message lists the accepted spellings.
    """
    from mmdeepfake import load_detector

    spec = (spec or STARTER).strip()
    folder = Path(spec).expanduser()
    if spec != STARTER and folder.is_dir() and not (folder / "config.json").is_file():
        return LoadedModel(spec, _load_family(folder))
    detector = load_detector(spec)
    return LoadedModel(spec, {detector.fusion_name: detector})


def _load_family(folder: Path) -> dict[str, Detector]:
    """One detector per sub-folder holding a config.json, keyed by its fusion strategy."""
    from mmdeepfake import load_detector

    members = sorted(p for p in folder.iterdir() if (p / "config.json").is_file())
    if not members:
        raise CheckpointError(
            f"{str(folder)!r} holds no config.json, neither itself nor in a sub-folder; give a "
            "folder written by Detector.save_pretrained, or a folder of such folders"
        )
    detectors: dict[str, Detector] = {}
    for member in members:
        detector = load_detector(member)
        name = detector.fusion_name
        detectors[name if name not in detectors else f"{name} ({member.name})"] = detector
    return detectors


def untrained_model(notice: str) -> LoadedModel:
    """A randomly initialised detector, so the page works when no trained model is available."""
    from mmdeepfake import Detector

    detector = Detector()
    return LoadedModel(UNTRAINED, {detector.fusion_name: detector}, notice=notice)


@dataclass(frozen=True)
class ModelCatalog:
    """The models a page visitor may load, as set by the operator at launch.

    ``models_dir``: folders under it are offered by their name relative to it (``"mine"``,
    ``"sweep/late"``); nothing outside it, through ``..``, an absolute path or a symbolic link.
    ``allow_hub``: hub ids ("owner/name" or "hf-hub:owner/name") may be loaded too (they are
    downloaded); they resolve to the explicit ``hf-hub:`` spelling, so a server folder that
    happens to share a hub id's name is never loaded in its place.
    """

    models_dir: Path | None = None
    allow_hub: bool = False
    MAX_LISTED = 20

    def resolve(self, spec: str) -> str:
        """What to load for a visitor's ``spec``: ``"starter"``, a folder path, or
        ``hf-hub:owner/name``.

        Raises:
            CheckpointError: the spec is not offered; the message is the same whether or not
                something exists at that path.
        """
        spec = spec.strip()
        if spec == STARTER:
            return STARTER
        folder = self._folder(spec)
        if folder is not None:
            return str(folder)
        repo_id = spec.removeprefix(HUB_PREFIX)
        if self.allow_hub and is_hub_id(repo_id) and "/" in repo_id:
            return HUB_PREFIX + repo_id
        raise CheckpointError(self._refusal(spec), hint=LOCAL_MODEL_FOLDER)

    def _folder(self, spec: str) -> Path | None:
        if self.models_dir is None or not spec or "\\" in spec or "\x00" in spec:
            return None
        relative = PurePosixPath(spec)
        if relative.is_absolute() or spec.startswith("~") or ".." in relative.parts:
            return None
        root = self.models_dir.resolve()
        candidate = (root / relative).resolve()
        if candidate == root or not candidate.is_relative_to(root) or not candidate.is_dir():
            return None
        return candidate

    def offered(self) -> list[str]:
        """The names a visitor can type: the starter and the model folders under models_dir."""
        names = [STARTER]
        if self.models_dir is not None and self.models_dir.is_dir():
            root = self.models_dir.resolve()
            for config in sorted(root.glob("*/config.json")) + sorted(root.glob("*/*/config.json")):
                names.append(str(config.parent.relative_to(root)))
                if len(names) > self.MAX_LISTED:
                    break
        return names

    def _refusal(self, spec: str) -> str:
        hub = (
            " or a Hugging Face Hub id (owner/name)"
            if self.allow_hub
            else "; this page does not load Hugging Face Hub ids"
        )
        return f"{spec!r} is not a model this page offers. Choose one of {self.offered()}{hub}."


class ModelStore:
    """Loaded models shared by all page sessions, least recently used dropped first.

    The model the page started with is pinned: a session that never loads another one always
    finds it. ``get`` is thread-safe and loads each spec once even under concurrent requests.
    """

    def __init__(
        self, initial: LoadedModel, capacity: int = 3, catalog: ModelCatalog | None = None
    ) -> None:
        self.initial = initial
        self.catalog = catalog or ModelCatalog()
        self.capacity = max(1, capacity)
        self._models: OrderedDict[str, LoadedModel] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, spec: str | None) -> LoadedModel:
        """The model for a spec the catalog offers, loaded on first use (raises CheckpointError).

        The model is known by the visitor's name for it; server folders are never shown.
        """
        if spec is None or spec == self.initial.spec:
            return self.initial
        spec = spec.strip()
        target = self.catalog.resolve(spec)
        with self._lock:
            if spec in self._models:
                self._models.move_to_end(spec)
                return self._models[spec]
            try:
                model = dataclasses.replace(load_model(target), spec=spec)
            except MmDeepfakeError as exc:
                raise CheckpointError(
                    f"could not load {spec!r}: {exc.message.replace(target, spec)}",
                    hint=exc.hint,
                ) from exc
            except Exception as exc:  # a broken checkpoint can fail in many ways below us
                log.warning("loading %s failed", target, exc_info=True)
                raise CheckpointError(
                    f"could not load {spec!r}; the details are in the server log"
                ) from exc
            for detector in model.detectors.values():
                detector.name = spec
            self._models[spec] = model
            while len(self._models) > self.capacity:
                self._models.popitem(last=False)
            return model
