"""The emotion vocabulary shared by every encoder, dataset and report."""

from __future__ import annotations

EMOTIONS: tuple[str, ...] = (
    "neutral",
    "happy",
    "sad",
    "angry",
    "fearful",
    "disgusted",
    "surprised",
)
NUM_EMOTIONS: int = len(EMOTIONS)
EMOTION_INDEX: dict[str, int] = {name: i for i, name in enumerate(EMOTIONS)}
LABELS: tuple[str, str] = ("real", "fake")
