"""Leading and trailing silence of a recording, found by energy relative to its loudest part.

Published work found that the fakes of FakeAVCeleb and AV-Deepfake1M can be told apart from
the real clips by their leading silence alone: a detector can score well on those datasets
without looking at a face or a voice. Trimming the silence at both ends before scoring, and
comparing, shows whether a model leans on it (``mmdeepfake-evaluate --audit silence``).

The rule, in the manner of ``librosa.effects.trim``: the recording is cut into frames of
``frame_seconds``; a frame is *sound* when its RMS is at most ``threshold_db`` decibels below
the RMS of the loudest frame, and everything before the first and after the last sound frame
is silence. 40 dB (librosa's default is 60) keeps a room's noise floor under a quiet voice on
the silent side. The span kept never shrinks below ``min_seconds`` (widened around the sound,
within the recording), so a click in a silent file does not leave a few samples to score.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["SILENCE_FRAME_SECONDS", "SILENCE_MIN_SECONDS", "SILENCE_THRESHOLD_DB", "trim_silence"]

SILENCE_THRESHOLD_DB = 40.0
SILENCE_FRAME_SECONDS = 0.02
SILENCE_MIN_SECONDS = 0.5


def trim_silence(
    wave: ArrayLike,
    sample_rate: int,
    *,
    threshold_db: float = SILENCE_THRESHOLD_DB,
    frame_seconds: float = SILENCE_FRAME_SECONDS,
    min_seconds: float = SILENCE_MIN_SECONDS,
) -> tuple[int, int]:
    """``(start, end)`` sample indices of ``wave`` without its leading and trailing silence.

    ``wave[start:end]`` is the part to keep. A recording that is all silence (or empty) is
    kept whole: there is no sound to find, so nothing is called silence. The kept span is
    at least ``min(min_seconds * sample_rate, len(wave))`` samples long.
    """
    if sample_rate <= 0 or frame_seconds <= 0 or threshold_db < 0 or min_seconds < 0:
        raise ValueError(
            "trim_silence needs sample_rate > 0, frame_seconds > 0, threshold_db >= 0 and "
            "min_seconds >= 0"
        )
    samples = np.asarray(wave, dtype=np.float64).reshape(-1)
    n = samples.size
    frame = max(1, round(frame_seconds * sample_rate))
    frames = -(-n // frame)
    padded = np.zeros(frames * frame)
    padded[:n] = samples
    rms = np.sqrt(np.mean(padded.reshape(frames, frame) ** 2, axis=1)) if n else np.zeros(0)
    loudest = float(rms.max()) if n else 0.0
    if loudest == 0.0:
        return 0, n
    sound = np.nonzero(rms >= loudest * 10.0 ** (-threshold_db / 20.0))[0]
    start, end = int(sound[0]) * frame, min(n, (int(sound[-1]) + 1) * frame)
    shortest = min(n, round(min_seconds * sample_rate))
    if end - start < shortest:
        centre = (start + end) // 2
        start = min(max(0, centre - shortest // 2), n - shortest)
        end = start + shortest
    return start, end
