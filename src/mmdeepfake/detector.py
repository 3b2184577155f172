"""The public detector: build, save, load, share and run an audio-visual deepfake detector."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import PyTorchModelHubMixin

from mmdeepfake import config_check
from mmdeepfake.config import DetectorConfig, PreprocessConfig
from mmdeepfake.config_check import check_num_frames, check_probability
from mmdeepfake.errors import CheckpointError, ConfigError, MmDeepfakeError
from mmdeepfake.media.decode import MediaSource
from mmdeepfake.model import EmotionConsistencyModel, ModelOutput
from mmdeepfake.model_card import build_model_card
from mmdeepfake.model_files import CONFIG_NAME, WEIGHTS_NAME
from mmdeepfake.pipeline import DetectionPipeline
from mmdeepfake.prediction import ModelInfo, Prediction

CARD_NAME = "README.md"
UNTRAINED = "untrained"


class Detector(
    torch.nn.Module,
    PyTorchModelHubMixin,
    library_name="mmdeepfake",
    tags=["deepfake-detection", "audio-visual", "emotion"],
    pipeline_tag="video-classification",
    license="apache-2.0",
):
    """Decides whether a talking-face clip (or a face plus a voice) is real or a deepfake.

    The model reads the emotion on the face and in the voice and asks whether they agree;
    ``predict`` returns the verdict with that evidence. Every constructor argument is held in
    :attr:`config` (a :class:`~mmdeepfake.config.DetectorConfig`) and stored in ``config.json``
    by :meth:`save_pretrained`, so a saved folder or hub repo rebuilds the exact architecture
    and preprocesses media as the model was trained to see them.

    Args:
        image_encoder / audio_encoder / fusion: registry names (see ``mmdeepfake.ENCODERS`` and
            ``mmdeepfake.FUSIONS``).
        *_kwargs: options of those components (for example ``{"width": 16}`` for a small ResNet).
        threshold: fake probability at or above which the verdict is "fake".
        temperature: calibration temperature applied to the fused logit (fitted by training).
        preprocess: how media become inputs (crop size and normalisation, frames per video,
            face framing and face-detector settings); a PreprocessConfig or a mapping of its
            fields. Default: ``PreprocessConfig()``.
        num_frames: frames sampled evenly from a video (replaces ``preprocess.num_frames``).
        metadata: free-form facts about the weights (training data, metrics) kept in the config.

    Raises:
        ConfigError: a setting out of range, or preprocessing the image encoder cannot take.
    """

    model: EmotionConsistencyModel
    name: str
    card: str | None

    def __init__(
        self,
        *,
        image_encoder: str = "resnet18",
        audio_encoder: str = "cnn_lstm",
        fusion: str = "mid",
        image_encoder_kwargs: dict[str, Any] | None = None,
        audio_encoder_kwargs: dict[str, Any] | None = None,
        fusion_kwargs: dict[str, Any] | None = None,
        embed_dim: int = 256,
        dropout: float = 0.1,
        threshold: float = 0.5,
        temperature: float = 1.0,
        preprocess: PreprocessConfig | Mapping[str, Any] | None = None,
        num_frames: int | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if isinstance(preprocess, Mapping):
            preprocess = PreprocessConfig.from_dict(preprocess)
        preprocess = preprocess or PreprocessConfig()
        if num_frames is not None:
            preprocess = replace(preprocess, num_frames=check_num_frames(num_frames))
        self.model = EmotionConsistencyModel(
            image_encoder=image_encoder,
            audio_encoder=audio_encoder,
            fusion=fusion,
            image_encoder_kwargs=image_encoder_kwargs,
            audio_encoder_kwargs=audio_encoder_kwargs,
            fusion_kwargs=fusion_kwargs,
            embed_dim=embed_dim,
            dropout=dropout,
        )
        #: Everything config.json holds; replaced (never edited) by :meth:`with_config`.
        self.config = DetectorConfig(
            **self.model.config,
            preprocess=_fitting(preprocess, self.model),
            threshold=threshold,
            temperature=temperature,
            metadata=dict(metadata or {}),
        )
        self.name = "untrained"
        self.eval()

    @classmethod
    def from_config(cls, config: DetectorConfig) -> Detector:
        """A detector with random weights built from ``config``."""
        return cls(
            **config.architecture(),
            preprocess=config.preprocess,
            threshold=config.threshold,
            temperature=config.temperature,
            metadata=config.metadata,
        )

    @classmethod
    def from_architecture(cls, name: str, **overrides: Any) -> Detector:
        """A detector with random weights of a named architecture (``tiny``, ``starter``,
        ``base``: see :func:`mmdeepfake.architectures.list_architectures`); ``overrides``
        replace config fields, for example ``fusion="attention"`` or ``num_frames=8``."""
        from mmdeepfake.architectures import architecture_config

        return cls.from_config(architecture_config(name).replace(**overrides))

    # --- properties --------------------------------------------------------------------------

    @property
    def fusion_name(self) -> str:
        return self.config.fusion

    @property
    def threshold(self) -> float:
        return float(self.config.threshold)

    @property
    def temperature(self) -> float:
        return float(self.config.temperature)

    @property
    def metadata(self) -> dict[str, Any]:
        return self.config.metadata

    @property
    def preprocess(self) -> PreprocessConfig:
        return self.config.preprocess

    @property
    def num_frames(self) -> int:
        """Frames sampled from a video when ``predict`` is not told otherwise."""
        return self.config.preprocess.num_frames

    @property
    def face_margin(self) -> float:
        """The framing of face crops: the saved ``preprocess.face_margin``, else the image
        encoder's declared margin (``EmotionEncoder.face_margin``)."""
        return self.pipeline.face_margin

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def forward(self, faces: torch.Tensor, waves: torch.Tensor) -> ModelOutput:
        """Score aligned batches of face crops (B,3,224,224) and voice windows (B,S)."""
        return self.model(faces, waves)

    def with_config(self, **changes: Any) -> Detector:
        """Change calibration, metadata or preprocessing in place (threshold, temperature,
        metadata, num_frames, preprocess: a PreprocessConfig, or a mapping of the preprocess
        fields to change). The architecture is fixed once built."""
        allowed = {"threshold", "temperature", "num_frames", "metadata", "preprocess"}
        unknown = set(changes) - allowed
        if unknown:
            raise ConfigError(
                f"cannot change {sorted(unknown)} after construction; allowed: {sorted(allowed)}"
            )
        if "num_frames" in changes:
            changes["num_frames"] = check_num_frames(changes["num_frames"])
        if "threshold" in changes:
            changes["threshold"] = check_probability(changes["threshold"], "threshold")
        if isinstance(changes.get("preprocess"), Mapping):
            changes["preprocess"] = {**self.preprocess.to_dict(), **changes["preprocess"]}
        config = self.config.replace(**changes)
        self.config = replace(config, preprocess=_fitting(config.preprocess, self.model))
        return self

    # --- persistence -------------------------------------------------------------------------

    def _save_pretrained(self, save_directory: Path) -> None:
        from safetensors.torch import save_model

        save_model(self, str(Path(save_directory) / WEIGHTS_NAME))
        # Written here rather than by the hub mixin, which would record the constructor
        # arguments as passed and lose calibration fitted after construction.
        (Path(save_directory) / CONFIG_NAME).write_text(json.dumps(self.config.to_dict(), indent=2))
        # The card too: a model loaded with its own card (the starter's "synthetic data only"
        # note, a card edited by hand) keeps it; the mixin would write a generic one instead.
        # push_to_hub saves through here, so the uploaded card is the same.
        (Path(save_directory) / CARD_NAME).write_text(self.model_card())

    def model_card(self) -> str:
        """The model card saved with the weights: the card this model was loaded with, if it
        had one, else one generated from its config and metadata."""
        card = getattr(self, "card", None)
        if card:
            return card
        return build_model_card(self.config.to_dict())

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: str | os.PathLike,
        *,
        revision: str | None = None,
        cache_dir: str | Path | None = None,
        force_download: bool = False,
        token: str | bool | None = None,
        local_files_only: bool = False,
        map_location: str = "cpu",
        **overrides: Any,
    ) -> Detector:
        """Load a detector: the hub mixin's name for :func:`mmdeepfake.load_detector`.

        ``pretrained_model_name_or_path`` is any model spec :func:`mmdeepfake.load_detector`
        takes: a local folder, ``hf-hub:ORG/NAME`` (or a bare ``ORG/NAME`` when no such folder
        exists), ``s3://BUCKET/PREFIX`` or ``starter``. ``overrides`` replace config values
        (for example ``image_encoder_kwargs={"model_id": FOLDER}`` to name a local Hugging Face
        model that the config may not name itself).

        Raises:
            CheckpointError: no such folder or repo, unreadable or mismatched files.
            HubUnreachableError: a hub id while the hub does not answer (within a few seconds).
            ConfigError: a malformed spec, or config values out of range.
        """
        # loading builds Detectors, so it is imported on use rather than above.
        from mmdeepfake.loading import load_as

        return load_as(
            cls,
            pretrained_model_name_or_path,
            revision=revision,
            cache_dir=cache_dir,
            force_download=force_download,
            token=token,
            local_files_only=local_files_only,
            map_location=map_location,
            **overrides,
        )

    @classmethod
    def _from_files(
        cls,
        config_path: Path,
        weights_path: Path,
        source: str,
        *,
        map_location: str = "cpu",
        overrides: dict[str, Any] | None = None,
    ) -> Detector:
        """Build a detector from its two files, found by :mod:`mmdeepfake.loading`.

        Only ``model.safetensors`` is read (never a pickle). ``config.json`` is checked before
        anything is built (see :mod:`mmdeepfake.config_check`): its values and the size of
        the model they imply, then the weights' shapes from the safetensors header, so a
        crafted config cannot allocate more than its weights file holds. ``source`` names the
        model in messages and becomes its ``name``.
        """
        from safetensors.torch import load_file

        overrides = overrides or {}
        stored = config_check.read_config(config_path)
        config = DetectorConfig.from_dict(
            _with_overrides(stored, overrides), from_file=set(stored) - set(overrides)
        )
        expected = config_check.implied_shapes(config.architecture())
        if expected is not None:
            config_check.check_weights_match(expected, weights_path, source)
        try:
            detector = cls.from_config(config)
            state = load_file(str(weights_path), device=str(map_location))
        except MmDeepfakeError:
            raise
        except Exception as exc:  # safetensors and torch raise many types on a broken file
            raise CheckpointError(
                f"could not load a detector from {source!r}: {exc}. Give a folder written by "
                "Detector.save_pretrained (config.json + model.safetensors) or a hub repo id."
            ) from exc
        missing, unexpected = detector.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise CheckpointError(
                f"the weights in {source!r} do not match its config.json "
                f"(missing: {sorted(missing)[:5]}, unexpected: {sorted(unexpected)[:5]})"
            )
        detector.eval()
        detector.name = source
        detector.card = _read_card(weights_path.parent)
        return detector

    @classmethod
    def starter(cls) -> Detector:
        """The small detector bundled with the package, trained on synthetic data only.

        It shows the pipeline end to end and separates the synthetic set well; it has never
        seen a real deepfake, so its verdicts on real media are demonstrations, not evidence.
        Same as ``load_detector("starter")``.
        """
        from mmdeepfake.loading import STARTER, load_as

        return load_as(cls, STARTER)

    # --- inference ---------------------------------------------------------------------------

    def predict(
        self,
        video: MediaSource | None = None,
        *,
        image: MediaSource | None = None,
        images: Sequence[MediaSource] | None = None,
        audio: MediaSource | None = None,
        threshold: float | None = None,
        num_frames: int | None = None,
        detect_faces: bool = True,
        abstain_below: float | None = None,
        on_unfamiliar: str = "uncertain",
        require: str = "any",
    ) -> Prediction:
        """Detect a deepfake in a video, in face image(s) plus a voice, or in one of them alone.

        Args:
            video: a clip (path, bytes); its sound track is the voice.
            image / images: face photo(s) (path, bytes, or HxWx3 uint8 array).
            audio: the voice recording (path, bytes, or a 16 kHz float array).
            threshold: overrides the detector's decision threshold.
            num_frames: frames sampled from a video (default from the config, 16).
            detect_faces: set False when images are already cropped to a face.
            abstain_below: if the calibrated confidence of the verdict is below this bound, the
                label is "uncertain" instead of real/fake.
            on_unfamiliar: what to do when a modality is unlike the model's training data (see
                ``Prediction.domain``): ``"uncertain"`` (default) labels the input "uncertain",
                ``"warn"`` keeps the real/fake verdict. Both add a warning.
            require: ``"any"`` (default) scores whatever modality is there: a face alone, a
                voice alone, a video without sound (or with silent sound, or where no face is
                found) is scored by that modality's own head, without the consistency cue.
                ``"both"`` insists on a face and a voice and raises the typed errors instead.

        Raises:
            MmDeepfakeError: a subclass saying what is wrong with the input.
        """
        return self.pipeline.run(
            video,
            image=image,
            images=images,
            audio=audio,
            threshold=threshold,
            num_frames=num_frames,
            detect_faces=detect_faces,
            abstain_below=abstain_below,
            on_unfamiliar=on_unfamiliar,
            require=require,
        ).prediction

    @property
    def pipeline(self) -> DetectionPipeline:
        """The work around the network that ``predict`` runs: decoding, faces, voice windows,
        threads, scoring (see :class:`~mmdeepfake.pipeline.DetectionPipeline`).

        Built from the current config on every access, so preprocessing or calibration changed
        with :meth:`with_config` applies to the next prediction.
        """
        return DetectionPipeline(
            self.model,
            preprocess=self.preprocess,
            threshold=self.threshold,
            temperature=self.temperature,
            metadata=self.metadata,
            model_info=self.model_info,
            model_notes=self._model_warnings(),
        )

    @property
    def model_info(self) -> ModelInfo:
        """Which model this is and what it was trained on, as every prediction reports it."""
        meta = self.metadata
        if self.name == UNTRAINED and not meta:
            return ModelInfo(
                name=self.name, training_data="nothing: random weights", synthetic=False
            )
        statement = str(
            meta.get("training_data")
            or meta.get("trained_on")
            or "not recorded in the model's metadata"
        )
        synthetic = bool(meta.get("synthetic_data")) or "mmdeepfake-synth" in statement
        return ModelInfo(name=self.name, training_data=statement, synthetic=synthetic)

    def _model_warnings(self) -> list[str]:
        info = self.model_info
        notes = []
        if info.name == UNTRAINED and not self.metadata:
            notes.append(
                "this detector was built with Detector() and never trained or loaded: its "
                "weights are random and its verdict means nothing; load one with "
                "Detector.from_pretrained(...) or Detector.starter()"
            )
        if info.synthetic:
            notes.append(
                f"this model was trained on synthetic data only ({info.training_data}): it has "
                "never seen real faces, voices or deepfakes, so its verdicts on real media are "
                "not evidence"
            )
        return notes


def _fitting(preprocess: PreprocessConfig, model: EmotionConsistencyModel) -> PreprocessConfig:
    """``preprocess``, refused when the image encoder cannot take crops normalised that way.

    Some encoders (``fer2013``, ``hf_image``) undo the pipeline's normalisation themselves with
    the default statistics (``EmotionEncoder.fixed_input_stats``): other statistics would reach
    them as wrong pixels, silently.
    """
    defaults = PreprocessConfig()
    encoder = model.image_encoder
    if getattr(encoder, "fixed_input_stats", False) and (
        preprocess.image_mean != defaults.image_mean or preprocess.image_std != defaults.image_std
    ):
        raise ConfigError(
            f"the {model.config['image_encoder']!r} image encoder takes crops normalised with "
            f"mean {defaults.image_mean} and std {defaults.image_std}, which it undoes itself; "
            f"preprocess.image_mean {preprocess.image_mean} / image_std {preprocess.image_std} "
            "cannot be used with it"
        )
    return preprocess


def _with_overrides(stored: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """A stored config with the caller's overrides; a ``preprocess`` override (a mapping or a
    PreprocessConfig) changes only the fields it names."""
    stored = dict(stored)
    if "num_frames" in stored and isinstance(stored.get("preprocess") or {}, Mapping):
        # the flat layout of older files, moved into its section before the caller's changes
        section = stored.get("preprocess") or {}
        stored["preprocess"] = {**section, "num_frames": stored.pop("num_frames")}
    merged = {**stored, **overrides}
    section = overrides.get("preprocess")
    if isinstance(section, PreprocessConfig):
        section = section.to_dict()
    if isinstance(section, Mapping) and isinstance(stored.get("preprocess"), Mapping):
        merged["preprocess"] = {**stored["preprocess"], **section}
    return merged


def _read_card(folder: Path) -> str | None:
    """The model card saved next to the weights (for a hub repo: if the download fetched it)."""
    card = folder / CARD_NAME
    return card.read_text() if card.is_file() else None
