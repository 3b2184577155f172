"""Model inputs from decoded media: normalised face tensors and log-mel spectrograms.

Image encoders take (B, 3, 224, 224) face crops normalised with the ImageNet statistics.
Audio encoders take fixed-length waveform windows of WINDOW_SAMPLES at 16 kHz; the ones that
work on spectrograms own a `LogMelSpectrogram`, which turns one window into exactly a
128 x 128 log-mel image:

    frames = 1 + WINDOW_SAMPLES // HOP_LENGTH   (torch.stft with center=True)
           = 1 + 256 * 127 // 256 = 128.

The log-mel scale is normalised with fixed constants, not per recording, so loudness still
reaches the model (a whisper and a shout of the same words do not look alike).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from mmdeepfake.config import PreprocessConfig

# The defaults of PreprocessConfig are the one source of these values; a model's own
# preprocessing travels in its config (Detector.preprocess).
_DEFAULTS = PreprocessConfig()
IMAGE_SIZE = _DEFAULTS.image_size
IMAGE_MEAN = _DEFAULTS.image_mean
IMAGE_STD = _DEFAULTS.image_std

SAMPLE_RATE = _DEFAULTS.sample_rate
N_MELS = _DEFAULTS.n_mels
N_FRAMES = _DEFAULTS.window_frames
HOP_LENGTH = _DEFAULTS.hop_length
N_FFT = _DEFAULTS.n_fft
#: Samples in one analysis window: exactly N_FRAMES spectrogram columns with center=True.
WINDOW_SAMPLES = _DEFAULTS.window_samples
WINDOW_SECONDS = _DEFAULTS.window_seconds  # 2.032 s

F_MIN = 20.0
F_MAX = SAMPLE_RATE / 2
#: dB floor, and the fixed affine map from dB to model input: (dB - DB_CENTER) / DB_SCALE.
#: Power is scaled so a full-scale sine reads about 0 dB; the floor reads -2, a loud voice ~+1.5.
DB_FLOOR = -100.0
DB_CENTER = -50.0
DB_SCALE = 25.0


def faces_to_tensor(
    crops: np.ndarray | Sequence[np.ndarray],
    *,
    size: int = IMAGE_SIZE,
    mean: Sequence[float] = IMAGE_MEAN,
    std: Sequence[float] = IMAGE_STD,
) -> torch.Tensor:
    """uint8 RGB crops (N,H,W,3) -> float tensor (N,3,size,size), (x / 255 - mean) / std.

    Crops of another size are resized (bilinear, anti-aliased). The defaults are ImageNet's
    statistics and 224 pixels; a detector passes its own ``PreprocessConfig`` values.
    """
    if isinstance(crops, np.ndarray) and crops.ndim == 3:
        crops = crops[None]
    if not isinstance(crops, np.ndarray):
        if len(crops) == 0:
            return torch.zeros(0, 3, size, size)
        tensors = [
            faces_to_tensor(np.asarray(c)[None], size=size, mean=mean, std=std) for c in crops
        ]
        return torch.cat(tensors)
    if crops.ndim != 4 or crops.shape[3] != 3:
        raise ValueError(f"face crops must be (N,H,W,3) uint8; got shape {crops.shape}")
    if not crops.flags.writeable:
        crops = crops.copy()
    x = torch.from_numpy(np.ascontiguousarray(crops, dtype=np.uint8)).permute(0, 3, 1, 2)
    if x.shape[2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    shift = torch.tensor(tuple(mean), dtype=torch.float32).view(1, 3, 1, 1) * 255
    scale = torch.tensor(tuple(std), dtype=torch.float32).view(1, 3, 1, 1) * 255
    return ((x.float() - shift) / scale).contiguous()


def hz_to_mel(freq: np.ndarray | float) -> np.ndarray:
    """HTK mel scale: 2595 log10(1 + f / 700)."""
    return 2595.0 * np.log10(1.0 + np.asarray(freq, dtype=np.float64) / 700.0)


def mel_to_hz(mel: np.ndarray | float) -> np.ndarray:
    return 700.0 * (10.0 ** (np.asarray(mel, dtype=np.float64) / 2595.0) - 1.0)


def mel_filter_bank(
    n_mels: int = N_MELS,
    n_fft: int = N_FFT,
    sample_rate: int = SAMPLE_RATE,
    f_min: float = F_MIN,
    f_max: float = F_MAX,
) -> np.ndarray:
    """(n_fft // 2 + 1, n_mels) triangular filters with peak 1, centres evenly spaced in mel."""
    bins = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    edges = mel_to_hz(np.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_mels + 2))
    lower, centre, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (bins[:, None] - lower[None]) / (centre - lower)[None]
    falling = (upper[None] - bins[:, None]) / (upper - centre)[None]
    return np.clip(np.minimum(rising, falling), 0.0, None).astype(np.float32)


def mel_bin_of(
    freq: float, n_mels: int = N_MELS, f_min: float = F_MIN, f_max: float = F_MAX
) -> int:
    """The mel band whose centre is nearest to `freq` (Hz)."""
    centres = mel_to_hz(np.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_mels + 2))[1:-1]
    return int(np.argmin(np.abs(centres - freq)))


class LogMelSpectrogram(torch.nn.Module):
    """Waveforms (B, S) at 16 kHz -> normalised log-mel spectrograms (B, 1, N_MELS, 1 + S // hop).

    Power spectrum of a Hann-windowed STFT (center=True, reflect padding), divided by the
    window's gain so a full-scale sine is about 0 dB, projected on `mel_filter_bank`, then
    `(clamp(10 log10 P, DB_FLOOR) - DB_CENTER) / DB_SCALE`. The constants are fixed, so the
    output keeps the recording's level. The filter bank and window are buffers (not trained),
    saved with the model so a checkpoint always carries its own front end.
    """

    def __init__(
        self,
        sample_rate: int = SAMPLE_RATE,
        n_fft: int = N_FFT,
        hop_length: int = HOP_LENGTH,
        n_mels: int = N_MELS,
        f_min: float = F_MIN,
        f_max: float | None = None,
    ) -> None:
        super().__init__()
        self.sample_rate, self.n_fft, self.hop_length, self.n_mels = (
            sample_rate,
            n_fft,
            hop_length,
            n_mels,
        )
        window = torch.hann_window(n_fft, periodic=True, device="cpu")  # real even under meta
        fb = mel_filter_bank(n_mels, n_fft, sample_rate, f_min, f_max or sample_rate / 2)
        self.register_buffer("window", window, persistent=False)
        self.register_buffer("mel_fb", torch.from_numpy(fb), persistent=False)
        self.power_scale = 1.0 / float(window.sum() / 2) ** 2

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        if waves.dim() == 1:
            waves = waves[None]
        if waves.shape[-1] <= self.n_fft // 2:  # reflect padding needs more than n_fft/2 samples
            waves = F.pad(waves, (0, self.n_fft // 2 + 1 - waves.shape[-1]))
        spec = torch.stft(
            waves.float(),
            self.n_fft,
            self.hop_length,
            window=self.window,
            center=True,
            pad_mode="reflect",
            return_complex=True,
        )
        power = spec.real.square() + spec.imag.square()  # (B, F, T)
        mel = torch.matmul(power.transpose(1, 2), self.mel_fb).transpose(1, 2) * self.power_scale
        db = 10.0 * torch.log10(mel.clamp(min=10 ** (DB_FLOOR / 10)))
        return ((db - DB_CENTER) / DB_SCALE).unsqueeze(1)


# --- windowing -----------------------------------------------------------------------------------


def audio_windows(
    wave: np.ndarray,
    *,
    window_samples: int = WINDOW_SAMPLES,
    hop_samples: int | None = None,
) -> list[tuple[int, int]]:
    """(start, end) sample indices of analysis windows that cover the whole recording.

    Windows start every `hop_samples` (default: back to back). When the last one would stop
    short of the end, one more window is aligned to the end (it overlaps its neighbour), so
    every window of a recording at least `window_samples` long is full length. A shorter
    recording gives a single window (0, len).
    """
    length = len(wave)
    hop = window_samples if hop_samples is None else int(hop_samples)
    if hop <= 0 or window_samples <= 0:
        raise ValueError("window_samples and hop_samples must be positive")
    if length <= window_samples:
        return [(0, length)]
    windows = [(s, s + window_samples) for s in range(0, length - window_samples + 1, hop)]
    if windows[-1][1] < length:
        windows.append((length - window_samples, length))
    return windows


def waves_to_windows(
    wave: np.ndarray, windows: Sequence[tuple[int, int]], *, window_samples: int = WINDOW_SAMPLES
) -> torch.Tensor:
    """Stack the windows of `wave` into (W, window_samples) float32, zero-padding short ones.

    A window shorter than window_samples (a short recording) is centred in silence.
    """
    wave = np.asarray(wave, dtype=np.float32)
    out = np.zeros((len(windows), window_samples), dtype=np.float32)
    for i, (start, end) in enumerate(windows):
        piece = wave[max(0, start) : end][:window_samples]
        offset = (window_samples - len(piece)) // 2
        out[i, offset : offset + len(piece)] = piece
    return torch.from_numpy(out)


def fit_window(wave: np.ndarray, *, window_samples: int = WINDOW_SAMPLES) -> torch.Tensor:
    """One window (window_samples,) from a whole recording: its centre, or it centred in silence."""
    wave = np.asarray(wave, dtype=np.float32).reshape(-1)
    start = max(0, (len(wave) - window_samples) // 2)
    return waves_to_windows(wave, [(start, start + window_samples)], window_samples=window_samples)[
        0
    ]


def window_times(windows: Sequence[tuple[int, int]], sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """(W, 2) start and end seconds of sample windows, for timelines."""
    return np.asarray(windows, dtype=np.float64).reshape(-1, 2) / sample_rate


def spectrogram_frames(num_samples: int, hop_length: int = HOP_LENGTH) -> int:
    """Columns of a center=True STFT of num_samples samples: 1 + num_samples // hop_length."""
    return 1 + num_samples // hop_length
