"""Voice-like audio with emotional prosody for the synthetic dataset.

Speech is imitated with a source-filter model, the way vowels are produced: a glottal pulse
train (Rosenberg pulses: harmonics falling about 12 dB/octave) at a time-varying pitch passes
through formant resonances that move from vowel to vowel, syllable by syllable, with short noise
bursts for consonants and a little breath noise. What listeners (and models) use to hear
emotion is set by the emotion, following the usual findings on vocal affect:

* pitch level and range (happy, fearful, surprised: high and wide; sad: low and narrow),
* pitch contour (surprise rises, sadness and anger fall),
* tempo (syllables per second), energy (loudness), and
* timbre: spectral tilt (anger is bright and tense, sadness dark and soft), jitter and tremor.

The speaker (base pitch, vocal-tract length, breathiness) is random and independent of the
emotion. All randomness comes from the generator passed in, so a seed fixes the sound.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from mmdeepfake.labels import EMOTIONS

__all__ = ["PROSODY", "SAMPLE_RATE", "Prosody", "VoiceIdentity", "synth_voice"]

SAMPLE_RATE = 16000
_N_FFT = 512
_HOP = 128

# (F1, F2, F3) in Hz of five vowels for an average adult vocal tract.
_VOWELS = np.array(
    [(730, 1090, 2440), (530, 1840, 2480), (270, 2290, 3010), (570, 840, 2410), (300, 870, 2240)],
    dtype=float,
)
_BANDWIDTHS = np.array([90.0, 110.0, 170.0])
_FORMANT_GAINS = np.array([1.0, 0.6, 0.35])


@dataclass(frozen=True)
class Prosody:
    """How an emotion sounds."""

    pitch: float  # multiplies the speaker's base pitch
    range_st: float  # pitch excursion in semitones
    contour: str  # flat | fall | rise | rise_fall
    rate: float  # syllables per second
    energy: float  # loudness, 0..1
    tilt_db: float  # spectral slope added per octave above 500 Hz (brightness)
    jitter: float  # random pitch wobble, fraction of pitch
    tremor: float  # 7 Hz vibrato depth, fraction of pitch


PROSODY: dict[str, Prosody] = {
    "neutral": Prosody(1.0, 2.5, "fall", 4.0, 0.45, 0.0, 0.006, 0.0),
    "happy": Prosody(1.28, 8.0, "rise_fall", 5.0, 0.75, 2.5, 0.008, 0.0),
    "sad": Prosody(0.84, 1.5, "fall", 2.6, 0.22, -5.0, 0.006, 0.0),
    "angry": Prosody(1.15, 5.0, "fall", 5.8, 1.0, 5.0, 0.015, 0.0),
    "fearful": Prosody(1.42, 4.0, "rise", 6.5, 0.45, 1.0, 0.022, 0.045),
    "disgusted": Prosody(0.9, 3.5, "rise_fall", 3.0, 0.5, -1.5, 0.012, 0.0),
    "surprised": Prosody(1.35, 10.0, "rise", 4.4, 0.8, 2.0, 0.008, 0.0),
}


@dataclass(frozen=True)
class VoiceIdentity:
    """A speaker: everything about the voice that does not depend on the emotion."""

    base_pitch: float  # Hz
    tract: float  # formant scale (shorter vocal tract -> higher formants)
    breath: float  # breath-noise level
    intensity: float  # how strongly this speaker shows emotions
    loudness: float  # overall level

    @classmethod
    def sample(cls, rng: np.random.Generator) -> VoiceIdentity:
        """A random adult speaker."""
        female = rng.random() < 0.5
        return cls(
            base_pitch=float(rng.uniform(175, 235) if female else rng.uniform(95, 140)),
            tract=float(rng.uniform(1.05, 1.18) if female else rng.uniform(0.9, 1.02)),
            breath=float(rng.uniform(0.01, 0.05)),
            intensity=float(rng.uniform(0.75, 1.0)),
            loudness=float(rng.uniform(0.85, 1.15)),
        )


def _contour(kind: str, x: np.ndarray) -> np.ndarray:
    """Pitch contour shape over normalised time x in [0, 1], roughly in [-0.5, 0.5]."""
    if kind == "fall":
        return 0.5 - x
    if kind == "rise":
        return x**2 - 0.35
    if kind == "rise_fall":
        return np.sin(np.pi * x) - 0.6
    return np.zeros_like(x)


def synth_voice(
    emotion: str | int,
    rng: np.random.Generator,
    *,
    seconds: float | None = None,
    sample_rate: int = SAMPLE_RATE,
    speaker: VoiceIdentity | None = None,
    robotic: bool = False,
) -> np.ndarray:
    """A mono float32 waveform in [-1, 1] of a voice speaking with ``emotion``.

    ``seconds`` defaults to a random 2-3 s; ``speaker`` is sampled from ``rng`` when not given.
    ``robotic`` flattens the pitch (no contour, jitter or accents): a vocoder-like artefact
    used for manipulated audio in the ``mixed`` synthetic variant.
    """
    name = EMOTIONS[emotion] if isinstance(emotion, (int, np.integer)) else emotion
    if name not in PROSODY:
        raise ValueError(f"unknown emotion {emotion!r}; use one of {', '.join(EMOTIONS)}")
    speaker = speaker or VoiceIdentity.sample(rng)
    duration = float(rng.uniform(2.0, 3.0)) if seconds is None else float(seconds)
    n = max(int(duration * sample_rate), _N_FFT)
    p = PROSODY[name]
    k = speaker.intensity * rng.uniform(0.85, 1.15)  # this utterance's emotional strength

    def towards(neutral: float, value: float) -> float:
        return neutral + k * (value - neutral)

    base = PROSODY["neutral"]
    pitch = speaker.base_pitch * towards(1.0, p.pitch)
    range_st = towards(base.range_st, p.range_st)
    rate = towards(base.rate, p.rate) * rng.uniform(0.9, 1.1)
    energy = towards(base.energy, p.energy)
    tilt = towards(0.0, p.tilt_db)
    t = np.arange(n) / sample_rate

    # Syllables: onset times, vowels and an amplitude envelope with pauses between phrases.
    onsets, vowels = [], []
    pos = float(rng.uniform(0.05, 0.2))
    while pos < duration - 0.15:
        onsets.append(pos)
        vowels.append(int(rng.integers(len(_VOWELS))))
        pos += rng.uniform(0.75, 1.25) / rate
        if rng.random() < 0.12:
            pos += rng.uniform(0.12, 0.3)
    envelope = np.zeros(n)
    accents = np.zeros(n)
    for i, start in enumerate(onsets):
        length = (onsets[i + 1] - start if i + 1 < len(onsets) else 1 / rate) * 0.8
        a, b = int(start * sample_rate), min(int((start + length) * sample_rate), n)
        if b <= a:
            continue
        x = np.linspace(0, 1, b - a)
        envelope[a:b] = np.maximum(envelope[a:b], np.sin(np.pi * x) ** 0.6 * rng.uniform(0.7, 1))
        accents[a:b] = rng.normal(0, 0.3) * np.sin(np.pi * x)

    # Pitch track: contour + syllable accents + jitter (a smoothed random walk) + tremor.
    semitones = range_st * (_contour(p.contour, t / duration) + accents)
    wobble = np.cumsum(rng.normal(0, 1, n)) / math.sqrt(sample_rate)
    wobble -= _moving_average(wobble, 801)  # keep only fast wobble (jitter), not drift
    jitter = towards(base.jitter, p.jitter)
    f0 = pitch * 2 ** (semitones / 12) * (1 + 12 * jitter * wobble)
    f0 *= 1 + towards(0.0, p.tremor) * np.sin(2 * math.pi * 7 * t)
    if robotic:
        f0 = np.full(n, pitch)
    f0 = np.clip(f0, 60, 500)

    # Source: Rosenberg glottal pulses (open phase 60 % of the period), plus breath noise.
    phase = np.cumsum(f0 / sample_rate) % 1.0
    opening, closing = 0.4, 0.2
    source = np.where(
        phase < opening,
        0.5 * (1 - np.cos(np.pi * phase / opening)),
        np.where(phase < opening + closing, np.cos(0.5 * np.pi * (phase - opening) / closing), 0.0),
    )
    source = np.diff(source, prepend=source[0]) * 40  # radiated flow derivative
    source += speaker.breath * rng.normal(0, 1, n)

    # Filter: formants that move with the vowel of each syllable, and the emotion's tilt.
    frames = 1 + (n - _N_FFT) // _HOP if n >= _N_FFT else 1
    centers = (np.arange(frames) * _HOP + _N_FFT / 2) / sample_rate
    if onsets:
        times = np.array(onsets) + 0.1 / rate
        formants = (
            np.stack([np.interp(centers, times, _VOWELS[vowels, j]) for j in range(3)], axis=1)
            * speaker.tract
        )
    else:
        formants = np.tile(_VOWELS[0] * speaker.tract, (frames, 1))
    freqs = np.fft.rfftfreq(_N_FFT, 1 / sample_rate)
    resonances = _FORMANT_GAINS / (
        1 + ((freqs[None, :, None] - formants[:, None, :]) / (_BANDWIDTHS / 2)) ** 2
    )
    shape = resonances.sum(-1) + 0.02
    shape *= 10 ** (tilt * np.log2(np.maximum(freqs, 500) / 500) / 20)
    shape[:, freqs < 70] = 0
    voiced = _filter(source, shape, n)

    # Consonants: short bursts of high-passed noise at syllable onsets.
    bursts = np.zeros(n)
    for start in onsets:
        if rng.random() < 0.7:
            a = int(start * sample_rate)
            m = min(int(rng.uniform(0.02, 0.06) * sample_rate), n - a)
            if m > 2:
                noise = np.diff(rng.normal(0, 1, m + 1))
                bursts[a : a + m] = noise * np.hanning(m) * rng.uniform(0.1, 0.3)

    wave = voiced * envelope + bursts * (0.5 + energy)
    rms = math.sqrt(float(np.mean(wave**2))) + 1e-9
    wave *= (0.03 + 0.17 * energy) * speaker.loudness / rms
    return np.clip(wave, -0.99, 0.99).astype(np.float32)


def _moving_average(x: np.ndarray, width: int) -> np.ndarray:
    """Centred moving average of ``x`` (edges averaged over the part inside the signal)."""
    cumulative = np.concatenate([[0.0], np.cumsum(x)])
    index = np.arange(len(x))
    lo = np.clip(index - width // 2, 0, len(x))
    hi = np.clip(index + width // 2 + 1, 0, len(x))
    return (cumulative[hi] - cumulative[lo]) / (hi - lo)


def _filter(signal: np.ndarray, shape: np.ndarray, n: int) -> np.ndarray:
    """Time-varying filtering by STFT, per-frame gain ``shape`` (frames, bins), overlap-add."""
    window = np.hanning(_N_FFT + 1)[:-1]
    frames = shape.shape[0]
    out = np.zeros(n + _N_FFT)
    norm = np.zeros(n + _N_FFT)
    padded = np.concatenate([signal, np.zeros(_N_FFT)])
    starts = np.arange(frames) * _HOP
    blocks = padded[starts[:, None] + np.arange(_N_FFT)] * window
    filtered = np.fft.irfft(np.fft.rfft(blocks, axis=1) * shape, n=_N_FFT, axis=1) * window
    for start, block in zip(starts, filtered):
        out[start : start + _N_FFT] += block
        norm[start : start + _N_FFT] += window**2
    return out[:n] / np.maximum(norm[:n], 1e-3)
