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
class Prediction:
    """Real or fake, with the evidence.

    ``fake_probability`` is the calibrated probability that the media is a deepfake;
    ``label`` compares it with ``threshold`` (or is ``"uncertain"`` when the caller asked the
    detector to abstain on low-confidence results). Emotion distributions are averaged over the
    analysed frames and audio windows; ``consistency`` is ``1 - JSD(face, voice) / ln 2``, so 1
    means the face and the voice express the same emotion.

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
    consistency: float
    modality_scores: dict[str, float]
    fusion: str
    fusion_weights: dict[str, float] | None
    segments: list[Segment]
    faces: list[Face]
    warnings: list[str]
    source: str | None = None
    duration: float | None = None
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def confidence(self) -> float:
        """Probability of the predicted class: how far the score sits from a coin flip."""
        return max(self.fake_probability, 1.0 - self.fake_probability)

    @property
    def face_emotion(self) -> str:
        """The dominant face emotion."""
        return max(self.face_emotions, key=self.face_emotions.__getitem__)

    @property
    def voice_emotion(self) -> str:
        """The dominant voice emotion."""
        return max(self.voice_emotions, key=self.voice_emotions.__getitem__)

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
        """One line a person can read: verdict, score and the emotional evidence."""
        return (
            f"{self.label.upper()} (p_fake={self.fake_probability:.2f}, threshold={self.threshold:.2f}); "
            f"face looks {self.face_emotion}, voice sounds {self.voice_emotion}, "
            f"consistency {self.consistency:.2f}"
        )


def _finite(value: Any) -> Any:
    """`value` with every float that is NaN or infinite replaced by None, recursively."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_finite(item) for item in value)
    return value
