"""trim_silence: where the silence at the ends of a recording starts and stops, by value."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmdeepfake.media.silence import trim_silence
from mmdeepfake.testing.media import tone, voice_like

SR = 16000
FRAME = 320  # the default 20 ms frame at 16 kHz


def _padded(lead: int, sound: np.ndarray, trail: int, floor: float = 0.0) -> np.ndarray:
    wave = np.concatenate([np.zeros(lead), sound, np.zeros(trail)])
    noise = np.random.default_rng(0).standard_normal(wave.size)
    quiet = np.r_[np.ones(lead, bool), np.zeros(sound.size, bool), np.ones(trail, bool)]
    return wave + floor * noise * quiet


def test_trims_exact_silence_at_both_ends() -> None:
    wave = _padded(8000, tone(seconds=1.0), 4000)
    assert trim_silence(wave, SR) == (8000, 24000)


def test_a_noise_floor_under_the_threshold_is_silence_and_above_it_is_sound() -> None:
    sound = tone(seconds=1.0, amplitude=0.5)  # RMS 0.354
    quiet = _padded(8000, sound, 8000, floor=0.354 * 10 ** (-50 / 20))  # 50 dB under
    assert trim_silence(quiet, SR) == (8000, 24000)
    loud = _padded(8000, sound, 8000, floor=0.354 * 10 ** (-30 / 20))  # 30 dB under
    assert trim_silence(loud, SR) == (0, 32000)
    assert trim_silence(loud, SR, threshold_db=20.0) == (8000, 24000)


def test_silent_and_empty_recordings_are_kept_whole() -> None:
    assert trim_silence(np.zeros(5000), SR) == (0, 5000)
    assert trim_silence(np.zeros(0), SR) == (0, 0)


def test_a_click_in_silence_keeps_the_minimum_length_around_it() -> None:
    wave = np.zeros(2 * SR)
    wave[16000:16010] = 1.0
    start, end = trim_silence(wave, SR, min_seconds=0.5)
    assert end - start == 8000 and start <= 16000 and end >= 16010
    near_end = np.zeros(SR)
    near_end[-5:] = 1.0
    assert trim_silence(near_end, SR, min_seconds=0.5) == (8000, 16000)
    short = np.zeros(4000)
    short[100] = 1.0
    assert trim_silence(short, SR, min_seconds=0.5) == (0, 4000)  # shorter than the minimum


def test_rejects_meaningless_settings() -> None:
    with pytest.raises(ValueError, match="sample_rate"):
        trim_silence(np.ones(10), 0)
    with pytest.raises(ValueError, match="threshold_db"):
        trim_silence(np.ones(10), SR, threshold_db=-1.0)


@settings(max_examples=60, deadline=None)
@given(
    lead=st.integers(0, 40),
    body=st.integers(1, 60),
    trail=st.integers(0, 40),
    gain=st.floats(1e-3, 1e3),
    seed=st.integers(0, 5),
)
def test_frame_aligned_silence_is_found_exactly_at_any_loudness(
    lead: int, body: int, trail: int, gain: float, seed: int
) -> None:
    """Silence of whole frames around a voice is cut exactly, whatever the voice's level.

    The voice is made loud at both of its ends, so its first and last frames are sound.
    """
    sound = voice_like(seconds=body * FRAME / SR, seed=seed).astype(np.float64)
    sound[:FRAME] += np.sign(np.arange(FRAME) % 2 - 0.5) * 0.3
    sound[-FRAME:] += np.sign(np.arange(FRAME) % 2 - 0.5) * 0.3
    wave = gain * _padded(lead * FRAME, sound, trail * FRAME)
    start, end = trim_silence(wave, SR, min_seconds=0.0)
    assert (start, end) == (lead * FRAME, (lead + body) * FRAME)


@settings(max_examples=60, deadline=None)
@given(
    wave=st.lists(st.floats(-1.0, 1.0), min_size=0, max_size=3000),
    min_seconds=st.floats(0.0, 0.2),
)
def test_the_kept_span_is_inside_the_recording_and_never_too_short(
    wave: list[float], min_seconds: float
) -> None:
    start, end = trim_silence(np.asarray(wave), SR, min_seconds=min_seconds)
    assert 0 <= start <= end <= len(wave)
    assert end - start >= min(round(min_seconds * SR), len(wave))
