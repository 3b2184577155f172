"""The result of one detection, with the evidence behind the verdict."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Verdict = Literal["real", "fake", "uncertain"]


@dataclass(frozen=True)
class Face:
    """A face used as evidence: where it was found and how sure the detector was."""

    frame_index: int
    time: float | None
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in pixels of the original frame
    score: float
    emotions: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Segment:
    """One time window of the clip, scored on its own."""

    start: float
    end: float
    face_emotions: dict[str, float]
    voice_emotions: dict[str, float]
    consistency: float
    fake_probability: float
    has_face: bool = True


@dataclass(frozen=True)
class ModelInfo:
    """Which model answered: its name (``"starter"``, a folder or a hub id, ``"untrained"``)
    and the one-line statement of its training data from its metadata."""

    name: str
    training_data: str
    synthetic: bool  # the metadata says the training data was synthetic


@dataclass(frozen=True)
class Prediction:
    """Real or fake, with the evidence.

    ``fake_probability`` is the calibrated probability that the media is a deepfake;
    ``label`` compares it with ``threshold``, or is ``"uncertain"`` when a modality is unlike
    the model's training data (see ``domain``) or when the caller asked the detector to abstain
    on low-confidence results. Emotion distributions are averaged over the analysed frames and
    audio windows; ``consistency`` is ``1 - JSD(face, voice) / ln 2``, so 1 means the face and
    the voice express the same emotion.

    ``modalities`` lists what was used: both, or one alone (a face image alone, a voice alone,
    a video without usable sound or face). With one modality, ``consistency`` is None, the
    other modality's emotions are empty, ``segments`` is empty and the verdict comes from that
    modality's own head. ``domain`` says, per modality used, how far the input lies from the
    training data and whether that is within the model's limit; ``model`` says which model
    answered and what it was trained on.

    ``timings`` gives the seconds spent in each stage: ``decode`` (frames or images),
    ``face_detection`` (with the crops), ``image_encoder``, and ``audio_decode`` and
    ``audio_encoder`` for the voice; ``features`` (pixels and samples to tensors) and ``fusion``;
    ``total`` is the wall time of the whole call. The voice stages run alongside the visual ones
    on CPUs with two or more threads, so the stages can add up to more than ``total``.
    """

    label: Verdict
    fake_probability: float
    threshold: float
    face_emotions: dict[str, float]
    voice_emotions: dict[str, float]
    consistency: float | None
    modality_scores: dict[str, float]
    fusion: str
    fusion_weights: dict[str, float] | None
    segments: list[Segment]
    faces: list[Face]
    warnings: list[str]
    source: str | None = None
    duration: float | None = None
    timings: dict[str, float] = field(default_factory=dict)
    modalities: list[str] = field(default_factory=lambda: ["image", "audio"])
    domain: dict[str, dict[str, float | bool | None]] = field(default_factory=dict)
    model: ModelInfo | None = None

    @property
    def confidence(self) -> float:
        """Probability of the predicted class: how far the score sits from a coin flip."""
        return max(self.fake_probability, 1.0 - self.fake_probability)

    @property
    def face_emotion(self) -> str | None:
        """The dominant face emotion (None when no face was used)."""
        return _dominant(self.face_emotions)

    @property
    def voice_emotion(self) -> str | None:
        """The dominant voice emotion (None when no voice was used)."""
        return _dominant(self.voice_emotions)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dictionary of every field; a non-finite number becomes None.

        Strict JSON has no NaN or Infinity (``json.dumps`` would write bare ``NaN``, which other
        parsers refuse), so a value that is not a finite number is reported as missing.
        """
        data = asdict(self)
        data["confidence"] = self.confidence
        data["face_emotion"] = self.face_emotion
        data["voice_emotion"] = self.voice_emotion
        return _finite(data)

    def to_json(self, **kwargs: Any) -> str:
        """`to_dict` as strict JSON (``allow_nan=False``: never a bare NaN or Infinity)."""
        kwargs.setdefault("allow_nan", False)
        return json.dumps(self.to_dict(), **kwargs)

    def summary(self) -> str:
        """One line a person can read: verdict, score, the evidence, what was unfamiliar and
        which model answered."""
        verdict = (
            f"{self.label.upper()} (p_fake={self.fake_probability:.2f}, "
            f"threshold={self.threshold:.2f})"
        )
        parts = [verdict]
        evidence = []
        if self.face_emotion is not None:
            evidence.append(f"face looks {self.face_emotion}")
        if self.voice_emotion is not None:
            evidence.append(f"voice sounds {self.voice_emotion}")
        if self.consistency is not None:
            evidence.append(f"consistency {self.consistency:.2f}")
        else:
            used = " and ".join(
                {"image": "face", "audio": "voice"}.get(m, m) for m in self.modalities
            )
            evidence.append(f"{used} only, no consistency cue")
        parts.append(", ".join(evidence))
        unfamiliar = [m for m, d in self.domain.items() if d.get("familiar") is False]
        if unfamiliar:
            parts.append(f"unlike the training data: {', '.join(unfamiliar)}")
        if self.model is not None:
            parts.append(f"model {self.model.name}, trained on {self.model.training_data}")
        return "; ".join(parts)


def _finite(value: Any) -> Any:
    """`value` with every float that is NaN or infinite replaced by None, recursively."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_finite(item) for item in value)
    return value


def _dominant(emotions: dict[str, float]) -> str | None:
    return max(emotions, key=emotions.__getitem__) if emotions else None
