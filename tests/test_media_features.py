"""Face tensors, the log-mel front end and audio windowing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mmdeepfake.media import features as ft
from mmdeepfake.testing import media as mf


def test_window_gives_exactly_128_by_128():
    assert ft.spectrogram_frames(ft.WINDOW_SAMPLES) == ft.N_FRAMES == 128
    assert ft.WINDOW_SECONDS == pytest.approx(2.032)
    out = ft.LogMelSpectrogram()(torch.randn(2, ft.WINDOW_SAMPLES) * 0.1)
    assert out.shape == (2, 1, 128, 128) and out.dtype == torch.float32


@pytest.mark.parametrize("freq", [300.0, 1000.0, 3000.0])
def test_sine_peaks_in_its_mel_band(freq):
    wave = torch.from_numpy(mf.tone(freq, 2.1)[: ft.WINDOW_SAMPLES])
    spec = ft.LogMelSpectrogram()(wave[None])[0, 0]
    peak = int(spec[:, 10:-10].mean(dim=1).argmax())
    assert abs(peak - ft.mel_bin_of(freq)) <= 1


def test_fixed_normalisation_keeps_loudness():
    mel = ft.LogMelSpectrogram()
    quiet = torch.from_numpy(mf.tone(500, 2.1, amplitude=0.01)[: ft.WINDOW_SAMPLES])
    loud = torch.from_numpy(mf.tone(500, 2.1, amplitude=0.5)[: ft.WINDOW_SAMPLES])
    silence = torch.zeros(ft.WINDOW_SAMPLES)
    out = mel(torch.stack([silence, quiet, loud]))[:, 0]
    band = ft.mel_bin_of(500)
    assert torch.all(out[0] == (ft.DB_FLOOR - ft.DB_CENTER) / ft.DB_SCALE)
    # 0.5 / 0.01 is 34 dB; a full-scale sine reads about 0 dB, so 0.5 reads about -6 dB.
    level = out[:, band, 10:-10].mean(dim=1) * ft.DB_SCALE + ft.DB_CENTER
    assert level[2] - level[1] == pytest.approx(34.0, abs=1.0)
    assert level[2] == pytest.approx(-6.0, abs=2.0)


def test_filter_bank_covers_the_spectrum():
    fb = ft.mel_filter_bank()
    assert fb.shape == (ft.N_FFT // 2 + 1, ft.N_MELS)
    assert np.all(fb.max(axis=0) > 0)  # no empty band
    assert np.all(np.diff(fb.argmax(axis=0)) >= 0)  # centres rise with the band index


def test_faces_to_tensor():
    crops = np.zeros((3, 224, 224, 3), np.uint8)
    crops[:] = (np.array(ft.IMAGE_MEAN) * 255).round().astype(np.uint8)
    out = ft.faces_to_tensor(crops)
    assert out.shape == (3, 3, 224, 224) and out.dtype == torch.float32
    assert out.abs().max() < 0.02
    resized = ft.faces_to_tensor(np.full((2, 100, 80, 3), 255, np.uint8))
    assert resized.shape == (2, 3, 224, 224)
    assert torch.allclose(resized[:, 0], torch.tensor((1 - 0.485) / 0.229), atol=1e-4)
    assert ft.faces_to_tensor([np.zeros((50, 50, 3), np.uint8)]).shape == (1, 3, 224, 224)


def test_audio_windows_cover_the_clip():
    n = ft.WINDOW_SAMPLES
    assert ft.audio_windows(np.zeros(1000)) == [(0, 1000)]
    assert ft.audio_windows(np.zeros(n)) == [(0, n)]
    wins = ft.audio_windows(np.zeros(3 * n + 500))
    assert wins[0] == (0, n) and wins[-1] == (2 * n + 500, 3 * n + 500)
    assert all(e - s == n for s, e in wins)
    overlapping = ft.audio_windows(np.zeros(2 * n), hop_samples=n // 2)
    assert len(overlapping) == 3


def test_waves_to_windows_and_fit_window():
    wave = np.arange(1, 40001, dtype=np.float32)
    stacked = ft.waves_to_windows(wave, ft.audio_windows(wave))
    assert stacked.shape == (2, ft.WINDOW_SAMPLES)
    assert stacked[1, -1] == 40000
    short = ft.fit_window(np.ones(1000, np.float32))
    assert short.shape == (ft.WINDOW_SAMPLES,) and short.sum() == 1000
    assert short[0] == 0 and short[ft.WINDOW_SAMPLES // 2] == 1  # centred in silence
    long = ft.fit_window(wave)
    assert long[0] == (40000 - ft.WINDOW_SAMPLES) // 2 + 1  # centre crop
