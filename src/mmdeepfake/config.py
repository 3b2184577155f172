"""Typed configuration of a detector: its architecture, preprocessing and calibration.

A :class:`DetectorConfig` is everything ``config.json`` holds, so a saved folder or hub repo
rebuilds the same model *and* feeds it the same inputs: the architecture (encoders, fusion and
their options), a :class:`PreprocessConfig` (face crop size and normalisation, how many frames
a video gives, how faces are found and framed, the audio front end), the calibration (threshold,
temperature) and free-form metadata.

The defaults of :class:`PreprocessConfig` are the one source of the preprocessing constants:
``mmdeepfake.media.features`` reads its module constants from them. Values are checked by
:mod:`mmdeepfake.config_check` (the same checks guard a ``config.json`` from an untrusted repo).

Files written before the ``preprocess`` section existed keep loading: their top-level
``num_frames`` becomes ``preprocess.num_frames`` and everything else takes today's defaults.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mmdeepfake import config_check
from mmdeepfake.errors import ConfigError
from mmdeepfake.media import faces

#: The fields that decide the network's shape (what :meth:`DetectorConfig.architecture` returns).
ARCHITECTURE_FIELDS = (
    "image_encoder",
    "audio_encoder",
    "fusion",
    "image_encoder_kwargs",
    "audio_encoder_kwargs",
    "fusion_kwargs",
    "embed_dim",
    "dropout",
)


@dataclass(frozen=True)
class PreprocessConfig:
    """How media become model inputs. Saved with a model, so it is fed as it was trained.

    Attributes:
        image_size: side of the square face crop given to the image encoder, in pixels.
        image_mean / image_std: per-channel RGB statistics (0-1 scale) the crops are normalised
            with (ImageNet's by default).
        sample_rate: voice sample rate in Hz.
        n_mels / n_fft / hop_length / window_frames: the log-mel front end; one analysis window
            is ``window_frames`` spectrogram columns (``window_samples`` samples).
        num_frames: frames sampled evenly from a video.
        face_margin: framing of a face crop, a square ``1 + face_margin`` times the detector
            box's longer side. None: the margin the image encoder declares
            (``EmotionEncoder.face_margin``).
        min_face_size: smallest face the face detector looks for, in pixels of the frame.
        face_thresholds: score thresholds of the face detector's three stages (P-, R-, O-Net).
        face_detect_side: frames are downscaled so their longer side is at most this many
            pixels before face detection.
        face_scale_factor: ratio between successive scales of the face detector's pyramid.
    """

    image_size: int = 224
    image_mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    image_std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    sample_rate: int = 16000
    n_mels: int = 128
    n_fft: int = 1024
    hop_length: int = 256
    window_frames: int = 128
    num_frames: int = 16
    face_margin: float | None = None
    min_face_size: int = faces.MIN_FACE_SIZE
    face_thresholds: tuple[float, float, float] = faces.STAGE_THRESHOLDS
    face_detect_side: int = faces.DETECT_SIDE
    face_scale_factor: float = faces.SCALE_FACTOR

    def __post_init__(self) -> None:
        # Checked here, so a config built in code is held to the same bounds as a loaded one;
        # JSON lists become tuples.
        for key, value in config_check.check_preprocess(self._fields()).items():
            object.__setattr__(self, key, value)

    def _fields(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @property
    def window_samples(self) -> int:
        """Samples in one analysis window: exactly ``window_frames`` columns of a centred STFT."""
        return self.hop_length * (self.window_frames - 1)

    @property
    def window_seconds(self) -> float:
        return self.window_samples / self.sample_rate

    def face_detector_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of ``mmdeepfake.media.faces.FaceDetector`` these settings set."""
        return {
            "min_face_size": self.min_face_size,
            "thresholds": self.face_thresholds,
            "detect_side": self.face_detect_side,
            "factor": self.face_scale_factor,
        }

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values (tuples as lists)."""
        return {
            key: list(value) if isinstance(value, tuple) else value
            for key, value in self._fields().items()
        }

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> PreprocessConfig:
        """Build from a ``preprocess`` section; missing keys take the defaults.

        Raises:
            ConfigError: an unknown key, or a value out of range (see
                :func:`mmdeepfake.config_check.check_preprocess`).
        """
        return cls(**config_check.check_preprocess(values))


@dataclass(frozen=True)
class DetectorConfig:
    """Everything that defines a detector, as saved in ``config.json``.

    ``metadata`` is the one mutable part (facts added after training, such as metrics); the
    rest changes only through :func:`dataclasses.replace` or ``Detector.with_config``.
    """

    image_encoder: str = "resnet18"
    audio_encoder: str = "cnn_lstm"
    fusion: str = "mid"
    image_encoder_kwargs: dict[str, Any] = field(default_factory=dict)
    audio_encoder_kwargs: dict[str, Any] = field(default_factory=dict)
    fusion_kwargs: dict[str, Any] = field(default_factory=dict)
    embed_dim: int = 256
    dropout: float = 0.1
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    threshold: float = 0.5
    temperature: float = 1.0
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # A ``preprocess`` given as a mapping (a JSON section) becomes a PreprocessConfig; the
        # other fields are checked and normalised (JSON numbers, copied option dicts).
        if not isinstance(self.preprocess, PreprocessConfig):
            if not isinstance(self.preprocess, Mapping):
                raise ConfigError(
                    f"preprocess must be a JSON object, got {type(self.preprocess).__name__}"
                )
            object.__setattr__(self, "preprocess", PreprocessConfig.from_dict(self.preprocess))
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        del values["preprocess"]
        for key, value in config_check.check_config(values).items():
            object.__setattr__(self, key, dict(value) if isinstance(value, dict) else value)

    @property
    def num_frames(self) -> int:
        """Frames sampled from a video (``preprocess.num_frames``)."""
        return self.preprocess.num_frames

    def architecture(self) -> dict[str, Any]:
        """The fields that decide the network's shape, as ``EmotionConsistencyModel`` arguments."""
        return {name: getattr(self, name) for name in ARCHITECTURE_FIELDS}

    def replace(self, **changes: Any) -> DetectorConfig:
        """A copy with some fields changed, checked like a loaded config."""
        return DetectorConfig.from_dict({**self.to_dict(), **_plain(changes)})

    def to_dict(self) -> dict[str, Any]:
        """The ``config.json`` object: the fields, with ``preprocess`` as a nested section."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        values["preprocess"] = self.preprocess.to_dict()
        return values

    @classmethod
    def from_dict(
        cls,
        values: Mapping[str, Any],
        *,
        from_file: set[str] | frozenset[str] = frozenset(),
    ) -> DetectorConfig:
        """Build from a ``config.json`` object (current or older flat layout).

        Args:
            values: the object; a top-level ``num_frames`` (the layout before the
                ``preprocess`` section) sets ``preprocess.num_frames``.
            from_file: keys whose values came from a file rather than from the caller: local
                folders named there are not followed (see :func:`config_check.check_config`).

        Raises:
            ConfigError: unknown keys or values out of range, naming the field.
        """
        values = _plain(values)
        if "num_frames" in values:  # the flat layout, or a caller's override
            section = values.get("preprocess") or {}
            if not isinstance(section, Mapping):
                raise ConfigError(f"preprocess must be a JSON object, got {type(section).__name__}")
            values["preprocess"] = {**section, "num_frames": values.pop("num_frames")}
        checked = config_check.check_config(values, from_file=from_file)
        for key in ("image_encoder_kwargs", "audio_encoder_kwargs", "fusion_kwargs", "metadata"):
            if key in checked and checked[key] is None:  # JSON null: the default, empty
                del checked[key]
        return cls(**checked)

    # Read access by key, as when the config was a plain dict (``detector.config["fusion"]``).

    def __getitem__(self, key: str) -> Any:
        if key == "num_frames":
            return self.num_frames
        if key in _FIELD_NAMES:
            return getattr(self, key)
        raise KeyError(key)

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default


_FIELD_NAMES = frozenset(f.name for f in dataclasses.fields(DetectorConfig))


def _plain(changes: Mapping[str, Any]) -> dict[str, Any]:
    """``changes`` with a PreprocessConfig value turned into its section."""
    return {
        key: value.to_dict() if isinstance(value, PreprocessConfig) else value
        for key, value in changes.items()
    }
