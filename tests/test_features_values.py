"""The audio and image front ends against independent numpy references and hand-worked values.

``test_media_features.py`` checks shapes and typical behaviour; here every number the encoders
receive is recomputed another way: the log-mel spectrogram from a plain numpy STFT (short
recordings included, one at a time and batched), the mel scale's known values, window times,
and the face tensor's resizing (anti-aliased, half-pixel centres) and normalisation.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from mmdeepfake.media import features as FT


def htk_mel(f):
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def reference_filter_bank(n_mels, n_fft, sample_rate, f_min, f_max):
    """Triangular filters with peak 1 at centres evenly spaced in HTK mel, built bin by bin."""
    mel_edges = np.linspace(htk_mel(f_min), htk_mel(f_max), n_mels + 2)
    hz_edges = 700.0 * (10.0 ** (mel_edges / 2595.0) - 1.0)
    freqs = np.arange(n_fft // 2 + 1) * (sample_rate / n_fft)
    bank = np.zeros((n_fft // 2 + 1, n_mels))
    for m in range(n_mels):
        lo, mid, hi = hz_edges[m], hz_edges[m + 1], hz_edges[m + 2]
        for k, f in enumerate(freqs):
            if lo < f <= mid:
                bank[k, m] = (f - lo) / (mid - lo)
            elif mid < f < hi:
                bank[k, m] = (hi - f) / (hi - mid)
    return bank


def reference_log_mel(wave, n_fft=FT.N_FFT, hop=FT.HOP_LENGTH):
    """Normalised log-mel with numpy only: zero-pad very short input, reflect-pad, Hann, rfft."""
    w = np.asarray(wave, dtype=np.float64)
    if len(w) <= n_fft // 2:
        w = np.pad(w, (0, n_fft // 2 + 1 - len(w)))
    padded = np.pad(w, n_fft // 2, mode="reflect")
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    frames = 1 + len(w) // hop
    spec = np.stack(
        [np.fft.rfft(padded[t * hop : t * hop + n_fft] * window) for t in range(frames)], axis=1
    )
    bank = reference_filter_bank(FT.N_MELS, n_fft, FT.SAMPLE_RATE, FT.F_MIN, FT.SAMPLE_RATE / 2)
    mel = bank.T @ np.abs(spec) ** 2 / (window.sum() / 2) ** 2
    db = 10.0 * np.log10(np.maximum(mel, 10 ** (FT.DB_FLOOR / 10)))
    return (db - FT.DB_CENTER) / FT.DB_SCALE


def voice(samples, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(samples) / FT.SAMPLE_RATE
    return (0.4 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(samples)).astype(
        np.float32
    )


# --- audio -------------------------------------------------------------------------------------


@pytest.mark.parametrize("samples", [100, 400, FT.N_FFT // 2, FT.N_FFT // 2 + 1, 3000])
def test_log_mel_matches_a_numpy_stft(samples):
    wave = voice(samples)
    got = FT.LogMelSpectrogram()(torch.from_numpy(wave))
    assert got.shape == (1, 1, FT.N_MELS, FT.spectrogram_frames(max(samples, FT.N_FFT // 2 + 1)))
    np.testing.assert_allclose(got[0, 0].numpy(), reference_log_mel(wave), atol=2e-3)


def test_a_batch_of_short_recordings_is_padded_per_recording():
    waves = np.stack([voice(100, seed=1), voice(100, seed=2), voice(100, seed=3)])
    got = FT.LogMelSpectrogram()(torch.from_numpy(waves))
    for row, wave in zip(got[:, 0].numpy(), waves):
        np.testing.assert_allclose(row, reference_log_mel(wave), atol=2e-3)


def test_filter_bank_matches_the_bin_by_bin_reference():
    got = FT.mel_filter_bank(n_mels=40, n_fft=512, sample_rate=16000, f_min=20.0, f_max=8000.0)
    want = reference_filter_bank(40, 512, 16000, 20.0, 8000.0)
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_mel_scale_known_values():
    assert FT.hz_to_mel(700.0) == pytest.approx(2595.0 * math.log10(2.0))
    assert FT.hz_to_mel(1000.0) == pytest.approx(999.98544, abs=1e-4)
    assert FT.mel_to_hz(2595.0 * math.log10(2.0)) == pytest.approx(700.0)
    assert FT.mel_to_hz(999.98544) == pytest.approx(1000.0, abs=1e-3)


def test_mel_bin_of_finds_each_band_centre():
    n_mels = 16
    mel_edges = np.linspace(htk_mel(FT.F_MIN), htk_mel(FT.F_MAX), n_mels + 2)
    centres = 700.0 * (10.0 ** (mel_edges[1:-1] / 2595.0) - 1.0)
    assert [FT.mel_bin_of(f, n_mels=n_mels) for f in centres] == list(range(n_mels))
    assert FT.mel_bin_of(FT.F_MAX, n_mels=n_mels) == n_mels - 1


def test_spectrogram_frames_is_a_whole_number_of_columns():
    assert FT.spectrogram_frames(1000, 256) == 4
    assert FT.spectrogram_frames(1024, 256) == 5
    assert isinstance(FT.spectrogram_frames(1000, 256), int)


@pytest.mark.parametrize(("window", "hop"), [(0, None), (0, 10), (100, 0), (-5, 10), (100, -1)])
def test_audio_windows_refuse_non_positive_sizes(window, hop):
    with pytest.raises(ValueError) as info:
        FT.audio_windows(np.zeros(1000), window_samples=window, hop_samples=hop)
    assert str(info.value) == "window_samples and hop_samples must be positive"


def test_windows_are_float32_and_centre_short_pieces():
    wave = np.arange(1, 7, dtype=np.float64)
    out = FT.waves_to_windows(wave, [(0, 6), (4, 6)], window_samples=8)
    assert out.dtype == torch.float32
    np.testing.assert_array_equal(out[0].numpy(), [0, 1, 2, 3, 4, 5, 6, 0])
    np.testing.assert_array_equal(out[1].numpy(), [0, 0, 0, 5, 6, 0, 0, 0])


def test_fit_window_takes_the_centre_of_any_shape_and_its_own_length():
    wave = np.arange(10, dtype=np.float64)
    np.testing.assert_array_equal(FT.fit_window(wave, window_samples=4).numpy(), [3, 4, 5, 6])
    np.testing.assert_array_equal(
        FT.fit_window(wave.reshape(10, 1), window_samples=4).numpy(), [3, 4, 5, 6]
    )
    assert FT.fit_window(wave, window_samples=1000).shape == (1000,)
    assert FT.fit_window(wave, window_samples=1000).dtype == torch.float32


def test_window_times_are_seconds():
    times = FT.window_times([(0, 16000), (8000, 24000)])
    np.testing.assert_allclose(times, [[0.0, 1.0], [0.5, 1.5]])
    np.testing.assert_allclose(FT.window_times([(0, 32000)], sample_rate=32000), [[0.0, 1.0]])
    assert FT.window_times([]).shape == (0, 2)


# --- faces -------------------------------------------------------------------------------------


def unnormalise(x: torch.Tensor) -> np.ndarray:
    mean = np.array(FT.IMAGE_MEAN)[:, None, None] * 255
    std = np.array(FT.IMAGE_STD)[:, None, None] * 255
    return x.numpy() * std + mean


def test_faces_to_tensor_normalises_each_channel():
    crop = np.zeros((FT.IMAGE_SIZE, FT.IMAGE_SIZE, 3), dtype=np.uint8)
    crop[..., 0], crop[..., 1], crop[..., 2] = 255, 128, 0
    (x,) = FT.faces_to_tensor(crop)
    for c, value in enumerate((255, 128, 0)):
        expected = (value / 255 - FT.IMAGE_MEAN[c]) / FT.IMAGE_STD[c]
        np.testing.assert_allclose(x[c].numpy(), expected, atol=1e-5)


def test_no_crops_give_an_empty_batch_of_the_model_shape():
    assert FT.faces_to_tensor([]).shape == (0, 3, FT.IMAGE_SIZE, FT.IMAGE_SIZE)
    assert FT.faces_to_tensor([], size=64).shape == (0, 3, 64, 64)


def test_crops_of_four_channels_are_refused():
    with pytest.raises(ValueError) as info:
        FT.faces_to_tensor(np.zeros((1, 8, 8, 4), dtype=np.uint8))
    assert str(info.value) == "face crops must be (N,H,W,3) uint8; got shape (1, 8, 8, 4)"


def test_read_only_crops_are_accepted_without_warnings():
    crop = np.full((1, 16, 16, 3), 200, dtype=np.uint8)
    crop.flags.writeable = False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        x = FT.faces_to_tensor(crop, size=16)
    np.testing.assert_allclose(unnormalise(x[0]), 200.0, atol=1e-3)


def test_downscaling_is_anti_aliased():
    # One-pixel stripes shrunk threefold: without anti-aliasing bilinear sampling keeps stripes.
    stripes = np.zeros((1, 3 * 32, 3 * 32, 3), dtype=np.uint8)
    stripes[:, :, ::2] = 255
    pixels = unnormalise(FT.faces_to_tensor(stripes, size=32)[0])
    assert pixels[:, 4:-4, 4:-4].std() < 40
    assert pixels.mean() == pytest.approx(255 * 48 / 96, abs=3)


def test_upscaling_uses_half_pixel_centres():
    # A 2-pixel ramp [0, 255] grown to 8 pixels: half-pixel centres (align_corners=False) clamp
    # the outer quarter on each side; aligned corners would start ramping at once.
    ramp = np.zeros((1, 2, 2, 3), dtype=np.uint8)
    ramp[:, :, 1] = 255
    row = unnormalise(FT.faces_to_tensor(ramp, size=8)[0])[0, 0]
    np.testing.assert_allclose(row, [0, 0, 31.875, 95.625, 159.375, 223.125, 255, 255], atol=0.5)


def test_a_list_of_crops_gets_the_same_size_and_statistics_as_an_array():
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 256, (2, 20, 20, 3), dtype=np.uint8)
    options = {"size": 16, "mean": (0.5, 0.25, 0.0), "std": (0.5, 0.25, 1.0)}
    as_list = FT.faces_to_tensor([crops[0], crops[1]], **options)
    assert as_list.shape == (2, 3, 16, 16)
    torch.testing.assert_close(as_list, FT.faces_to_tensor(crops, **options))
