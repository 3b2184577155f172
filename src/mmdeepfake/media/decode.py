"""Bytes to arrays: images (Pillow), audio (soundfile, PyAV for other containers), video (PyAV).

Everything a user hands in (a path, the bytes of a file, or an array already in memory) goes
through here, so this module owns the checks on bad media: the kind of a file is decided by its
content rather than its name, and every failure of the underlying decoders becomes a typed
:mod:`mmdeepfake.errors` exception whose message says what was wrong and what to do.

Video is sampled, not decoded in full: `num_frames` timestamps are spread evenly over the clip
and the decoder seeks to the keyframe before each one, then decodes forward to it, so the cost
depends on the number of frames asked for rather than the length of the clip.
"""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from mmdeepfake.errors import (
    CorruptMediaError,
    MediaNotFoundError,
    MediaTooLargeError,
    NoAudioTrackError,
    SilentAudioError,
    UnsupportedMediaError,
)

if TYPE_CHECKING:
    import av.container

MediaSource = str | os.PathLike | bytes | bytearray | np.ndarray
MediaKind = Literal["image", "audio", "video"]

#: Largest file (or byte string) accepted, in bytes.
MAX_FILE_BYTES = 2 * 1024**3
#: Largest image accepted, in pixels (width x height): about a 9000 x 9000 photograph.
MAX_IMAGE_PIXELS = 80_000_000
#: Audio whose RMS stays below this (about -80 dBFS) is treated as silence.
SILENCE_RMS = 1e-4
#: Longest audio decoded, in seconds (an hour of 16 kHz float32 is 230 MB).
MAX_AUDIO_SECONDS = 3600.0

_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
_AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".oga", ".mp3", ".m4a", ".aac", ".opus", ".wma"}
_VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v", ".mpg", ".mpeg", ".ts"}
_HINT = "Pass a video (mp4/mov/webm/mkv), an image (jpg/png) or audio (wav/flac/mp3/ogg/m4a)."


# --- sources -------------------------------------------------------------------------------------


def _describe(source: MediaSource) -> str:
    """A short name for error messages."""
    if isinstance(source, (str, os.PathLike)):
        return f"'{os.fspath(source)}'"
    if isinstance(source, (bytes, bytearray)):
        return f"the given bytes ({len(source)} bytes)"
    return "the given array"


def _check_path(source: str | os.PathLike) -> Path:
    """Existence and size checks before any decoder sees the file."""
    path = Path(os.fspath(source)).expanduser()
    if not path.exists():
        raise MediaNotFoundError(
            f"{_describe(source)} does not exist. Check the path and spelling."
        )
    if not path.is_file():
        raise MediaNotFoundError(
            f"{_describe(source)} is not a file. Pass a media file, not a folder."
        )
    size = path.stat().st_size
    if size == 0:
        raise CorruptMediaError(
            f"{_describe(source)} is empty (0 bytes). Re-export or re-download it."
        )
    if size > MAX_FILE_BYTES:
        raise MediaTooLargeError(
            f"{_describe(source)} is {size / 1024**3:.1f} GiB, over the {MAX_FILE_BYTES / 1024**3:.0f}"
            " GiB limit. Trim or re-encode it to a smaller file."
        )
    return path


def _check_bytes(data: bytes | bytearray) -> bytes:
    if len(data) == 0:
        raise CorruptMediaError("The given media is empty (0 bytes). Pass the file's full content.")
    if len(data) > MAX_FILE_BYTES:
        raise MediaTooLargeError(
            f"The given media is {len(data) / 1024**3:.1f} GiB, over the "
            f"{MAX_FILE_BYTES / 1024**3:.0f} GiB limit. Trim or re-encode it."
        )
    return bytes(data)


def _head(source: str | os.PathLike | bytes | bytearray, n: int = 64) -> bytes:
    if isinstance(source, (bytes, bytearray)):
        return bytes(source[:n])
    with open(source, "rb") as handle:
        return handle.read(n)


def _open_input(source: str | os.PathLike | bytes) -> str | io.BytesIO:
    """What Pillow, soundfile and PyAV accept: a path string or a fresh in-memory file."""
    if isinstance(source, bytes):
        return io.BytesIO(source)
    return os.fspath(source)


# --- kind detection ------------------------------------------------------------------------------


def _sniff(head: bytes) -> tuple[str, str] | None:
    """(kind, format name) from magic bytes, or None; "container" means probe with PyAV."""
    if head.startswith(b"\xff\xd8\xff"):
        return "image", "JPEG"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image", "PNG"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "image", "GIF"
    if head.startswith(b"BM") and len(head) > 14 and head[6:10] == b"\0\0\0\0":
        return "image", "BMP"
    if head[:4] in (b"II*\0", b"MM\0*"):
        return "image", "TIFF"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "image", "WebP"
    if head.startswith(b"RIFF") and head[8:12] == b"WAVE":
        return "audio", "WAV"
    if head.startswith(b"RIFF") and head[8:12] == b"AVI ":
        return "container", "AVI"
    if head.startswith(b"fLaC"):
        return "audio", "FLAC"
    if head.startswith(b"OggS"):
        return "container", "Ogg"
    if head.startswith(b"ID3") or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return "audio", "MP3/AAC"
    if head.startswith(b"FORM") and head[8:12] in (b"AIFF", b"AIFC"):
        return "audio", "AIFF"
    if head[4:8] == b"ftyp":
        return "container", "MP4/MOV"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "container", "Matroska/WebM"
    if head.startswith(b"FLV"):
        return "container", "FLV"
    if head.startswith((b"\x00\x00\x01\xba", b"\x00\x00\x01\xb3")):
        return "container", "MPEG"
    return None


def _probe_container(source: str | os.PathLike | bytes, name: str) -> MediaKind:
    """Open a container with PyAV and report whether it holds video or only audio."""
    import av

    try:
        with av.open(_open_input(source), "r") as container:
            has_video = any(not _is_cover_art(s) for s in container.streams.video)
            has_audio = bool(container.streams.audio)
    except av.error.FFmpegError as exc:
        raise CorruptMediaError(
            f"{name} looks like media but cannot be opened ({_reason(exc)}); it is probably "
            "truncated or damaged. Re-export or re-download it."
        ) from None
    if has_video:
        return "video"
    if has_audio:
        return "audio"
    raise UnsupportedMediaError(f"{name} holds neither a video nor an audio stream. {_HINT}")


def _is_cover_art(stream) -> bool:
    """Album art in audio files shows up as a one-frame video stream; it is not video."""
    try:
        return bool(stream.disposition & 0x400)  # AV_DISPOSITION_ATTACHED_PIC
    except (AttributeError, TypeError):
        return False


def _reason(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return str(text).strip().rstrip(".") or type(exc).__name__


def _kind_of_file(source: str | os.PathLike | bytes) -> MediaKind:
    name = _describe(source)
    sniffed = _sniff(_head(source))
    if sniffed is None:
        if _looks_like_text(_head(source, 512)):
            raise UnsupportedMediaError(f"{name} is a text file, not media. {_HINT}")
        # Formats without a clear signature (MPEG-TS, raw AAC...): let PyAV decide.
        import av

        try:
            with av.open(_open_input(source), "r") as container:
                if any(not _is_cover_art(s) for s in container.streams.video):
                    return "video"
                if container.streams.audio:
                    return "audio"
        except av.error.FFmpegError:
            pass
        raise UnsupportedMediaError(
            f"{name} is not in a recognised image, audio or video format. {_HINT}"
        )
    kind, fmt = sniffed
    if kind == "container":
        return _probe_container(source, f"{name} ({fmt})")
    return kind  # type: ignore[return-value]


def _looks_like_text(head: bytes) -> bool:
    if not head:
        return False
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(ch.isprintable() or ch in "\r\n\t" for ch in text)


def _suffix_kind(source: MediaSource) -> str | None:
    if not isinstance(source, (str, os.PathLike)):
        return None
    suffix = Path(os.fspath(source)).suffix.lower()
    for kind, suffixes in (
        ("image", _IMAGE_SUFFIXES),
        ("audio", _AUDIO_SUFFIXES),
        ("video", _VIDEO_SUFFIXES),
    ):
        if suffix in suffixes:
            return kind
    return None


def detect_media_kind(source: MediaSource) -> MediaKind:
    """Whether `source` holds an image, audio or a video, judged by content, never by name.

    Arrays are classified by shape: (H,W) or (H,W,C<=4) image, (S,) or (C<=8,S) audio,
    (N,H,W,3) video frames. A file whose name promises one kind and whose content is another
    (an image saved as .wav) raises UnsupportedMediaError rather than being silently reinterpreted.
    """
    if isinstance(source, np.ndarray):
        return _kind_of_array(source)
    if isinstance(source, (bytes, bytearray)):
        return _kind_of_file(_check_bytes(source))
    if not isinstance(source, (str, os.PathLike)):
        raise UnsupportedMediaError(
            f"Cannot read media from a {type(source).__name__}. Pass a path, bytes or a numpy array."
        )
    _check_path(source)
    kind = _kind_of_file(source)
    named = _suffix_kind(source)
    # A video container name holding only audio (an .mp4 voice memo) is fine; anything else is not.
    if named is not None and named != kind and not (named == "video" and kind == "audio"):
        raise UnsupportedMediaError(
            f"{_describe(source)} is named like {_article(named)} {named} file but contains "
            f"{_article(kind)} {kind}. Rename it to match its content or pass the right file."
        )
    return kind


def _article(kind: str) -> str:
    return "a" if kind == "video" else "an"


def _kind_of_array(array: np.ndarray) -> MediaKind:
    if array.ndim == 1 or (array.ndim == 2 and min(array.shape) <= 8):
        return "audio"
    if array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (1, 3, 4)):
        return "image"
    if array.ndim == 4 and array.shape[3] == 3:
        return "video"
    raise UnsupportedMediaError(
        f"Cannot tell what an array of shape {array.shape} holds. Pass images as (H,W,3) uint8, "
        "audio as (S,) float, video frames as (N,H,W,3) uint8."
    )


def _expect(source: MediaSource, wanted: tuple[MediaKind, ...]) -> tuple[MediaKind, object]:
    """Check kind and return (kind, checked source) where the source is a path or bytes."""
    kind = detect_media_kind(source)
    if kind not in wanted:
        raise UnsupportedMediaError(
            f"{_describe(source)} contains {_article(kind)} {kind}, but "
            f"{' or '.join(_article(w) + ' ' + w for w in wanted)} was expected. "
            "Pass it in the matching argument (video=, image=, audio=)."
        )
    if isinstance(source, (bytes, bytearray)):
        return kind, bytes(source)
    return kind, source


# --- images --------------------------------------------------------------------------------------


def load_image(source: MediaSource, *, max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """Decode an image to an (H, W, 3) uint8 RGB array, upright per its EXIF orientation.

    Transparent images are composited on white; greyscale, palette and 16-bit images are
    converted. Images over `max_pixels` raise MediaTooLargeError before their pixels are
    decoded (decompression-bomb guard).
    """
    if isinstance(source, np.ndarray):
        return _array_to_rgb(source)
    _, checked = _expect(source, ("image",))
    from PIL import Image, ImageOps

    name = _describe(source)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(_open_input(checked))  # type: ignore[arg-type]
        with image:
            width, height = image.size
            if width * height > max_pixels:
                raise MediaTooLargeError(_too_large(name, width, height, max_pixels))
            image.load()
            image = ImageOps.exif_transpose(image)
            return _pil_to_rgb(image)
    except Image.DecompressionBombError:
        raise MediaTooLargeError(_too_large(name, None, None, max_pixels)) from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise CorruptMediaError(
            f"{name} is an image that cannot be decoded ({_reason(exc)}); it is probably "
            "truncated or damaged. Re-export or re-download it."
        ) from None


def _too_large(name: str, width: int | None, height: int | None, limit: int) -> str:
    size = f" ({width}x{height} pixels)" if width else ""
    return (
        f"{name} is too large{size}: images over {limit:,} pixels are refused as a guard against "
        "decompression bombs. Downscale it first, or raise max_pixels if you trust the file."
    )


def _pil_to_rgb(image) -> np.ndarray:
    from PIL import Image

    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        array = np.asarray(image, dtype=np.float32)
        high = float(array.max()) if array.size else 0.0
        scale = 255.0 / (65535.0 if high > 255 else 255.0)
        return _array_to_rgb(np.clip(array * scale, 0, 255).astype(np.uint8))
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image.convert("RGBA"))
    return np.asarray(image.convert("RGB"), dtype=np.uint8).copy()


def _array_to_rgb(array: np.ndarray) -> np.ndarray:
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise UnsupportedMediaError(
            f"An image array must be (H,W), (H,W,3) or (H,W,4); got shape {array.shape}."
        )
    array = array[..., :3]
    if array.dtype != np.uint8:
        array = np.asarray(array, dtype=np.float32)
        if array.size and float(np.nanmax(array)) <= 1.0:
            array = array * 255.0
        array = np.clip(np.nan_to_num(array), 0, 255).round().astype(np.uint8)
    return np.ascontiguousarray(array)


# --- audio ---------------------------------------------------------------------------------------


def load_audio(
    source: MediaSource,
    *,
    sample_rate: int = 16000,
    source_rate: int | None = None,
    check_silence: bool = True,
) -> np.ndarray:
    """Decode audio to float32 mono at `sample_rate`.

    Files go through soundfile (wav/flac/ogg/mp3/aiff) and otherwise PyAV (m4a/aac/opus, and the
    audio track of a video file). Arrays are taken as sampled at `source_rate` (default
    `sample_rate`); integer arrays are scaled from their full range, (S, C) or (C, S) arrays are
    mixed down. Raises SilentAudioError for silence unless `check_silence` is false.
    """
    name = _describe(source)
    if isinstance(source, np.ndarray):
        wave, rate = _array_to_mono(source), source_rate or sample_rate
    else:
        kind, checked = _expect(source, ("audio", "video"))
        wave, rate = _decode_audio_file(checked, name, kind)  # type: ignore[arg-type]
    if wave.size == 0:
        raise CorruptMediaError(f"{name} contains no audio samples. Pass a non-empty recording.")
    wave = resample(wave, rate, sample_rate)
    if check_silence:
        check_not_silent(wave, name)
    return wave


def check_not_silent(wave: np.ndarray, name: str = "The audio") -> None:
    """Raise SilentAudioError when `wave` carries no usable signal (RMS below SILENCE_RMS)."""
    rms = float(np.sqrt(np.mean(np.square(wave, dtype=np.float64)))) if wave.size else 0.0
    if not np.isfinite(rms) or rms < SILENCE_RMS:
        raise SilentAudioError(
            f"{name} is silent (RMS {rms:.1e}, below {SILENCE_RMS:.0e}): there is no voice to "
            "analyse. Check the recording level or the microphone, or pass another file."
        )


def _array_to_mono(array: np.ndarray) -> np.ndarray:
    if array.ndim == 2:
        # Channels are the short axis: (S, C) from soundfile, (C, S) from PyAV or torch.
        axis = 1 if array.shape[1] <= array.shape[0] else 0
        array = (
            array.mean(axis=axis)
            if np.issubdtype(array.dtype, np.floating)
            else array.astype(np.float64).mean(axis=axis).astype(array.dtype)
        )
    if array.ndim != 1:
        raise UnsupportedMediaError(
            f"An audio array must be (S,) or (S, channels); got shape {array.shape}."
        )
    if np.issubdtype(array.dtype, np.integer):
        info = np.iinfo(array.dtype)
        wave = (array.astype(np.float32) - (info.max + info.min + 1) / 2) / (
            (info.max + 1 - info.min) / 2
        )
    else:
        wave = np.nan_to_num(array.astype(np.float32))
    return np.ascontiguousarray(wave, dtype=np.float32)


def _decode_audio_file(
    source: str | os.PathLike | bytes, name: str, kind: str
) -> tuple[np.ndarray, int]:
    if kind == "audio":
        import soundfile as sf

        try:
            data, rate = sf.read(_open_input(source), dtype="float32", always_2d=True)
            return _array_to_mono(data), int(rate)
        except (sf.LibsndfileError, RuntimeError, TypeError, ValueError):
            pass  # not a libsndfile format (m4a, opus in mp4...), or damaged: PyAV decides
    import av

    try:
        with av.open(_open_input(source), "r") as container:
            if not container.streams.audio:
                raise NoAudioTrackError(_no_audio_message(name))
            return _decode_audio_stream(container, container.streams.audio[0], name)
    except av.error.FFmpegError as exc:
        raise CorruptMediaError(
            f"{name} has audio that cannot be decoded ({_reason(exc)}); it is probably "
            "truncated or damaged. Re-export or re-download it."
        ) from None


def _no_audio_message(name: str) -> str:
    return (
        f"{name} has no audio track, so there is no voice to compare with the face. Pass a clip "
        "with sound, or give the voice separately (audio=...)."
    )


def _decode_audio_stream(
    container: av.container.InputContainer, stream, name: str
) -> tuple[np.ndarray, int]:
    """Decode one audio stream to mono float32 at its own rate (the caller resamples)."""
    import av

    rate = stream.codec_context.sample_rate or stream.rate or 16000
    # Planar float at the stream's own layout; channels are averaged here, because libswresample
    # downmixes stereo at -3 dB per channel, which would make stereo files 3 dB louder than mono.
    mixer = av.AudioResampler(format="fltp", rate=rate)
    chunks: list[np.ndarray] = []
    total, limit = 0, int(MAX_AUDIO_SECONDS * rate)
    for packet in container.demux(stream):
        try:
            frames = packet.decode()
        except av.error.InvalidDataError:
            continue  # one damaged packet: keep the rest of the track
        for frame in frames:
            for planar in mixer.resample(frame):
                chunk = planar.to_ndarray().mean(axis=0)
                chunks.append(chunk)
                total += chunk.size
        if total > limit:
            raise MediaTooLargeError(
                f"{name} has more than {MAX_AUDIO_SECONDS / 60:.0f} minutes of audio. "
                "Cut it into shorter pieces."
            )
    for planar in mixer.resample(None):
        chunks.append(planar.to_ndarray().mean(axis=0))
    wave = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
    return wave, int(rate)


def resample(wave: np.ndarray, orig_rate: int, new_rate: int) -> np.ndarray:
    """Band-limited polyphase resampling with a Hann-windowed sinc (no torchaudio needed).

    The rates are reduced by their gcd to `up`/`down`; each of the `up` output phases is a
    FIR filter (cutoff 0.99 x the lower Nyquist, 6 zero crossings) applied with one strided
    conv1d, which is exact for integer ratios and fast for the usual 44.1/48 kHz -> 16 kHz.
    """
    if orig_rate == new_rate or wave.size == 0:
        return np.ascontiguousarray(wave, dtype=np.float32)
    if orig_rate <= 0 or new_rate <= 0:
        raise UnsupportedMediaError(f"Invalid sample rates {orig_rate} -> {new_rate}.")
    import math

    import torch

    g = math.gcd(int(orig_rate), int(new_rate))
    down, up = int(orig_rate) // g, int(new_rate) // g
    zero_crossings, rolloff = 6, 0.99
    cutoff = min(down, up) * rolloff
    width = math.ceil(zero_crossings * down / cutoff)
    idx = torch.arange(-width, width + down, dtype=torch.float64)[None] / down
    t = (-torch.arange(up, dtype=torch.float64)[:, None] / up + idx) * cutoff
    t = t.clamp(-zero_crossings, zero_crossings)
    window = torch.cos(t * math.pi / zero_crossings / 2) ** 2
    t = t * math.pi
    kernel = torch.where(t == 0, torch.ones_like(t), torch.sin(t) / t) * window * cutoff / down
    x = torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32))[None, None]
    x = torch.nn.functional.pad(x, (width, width + down))
    with torch.inference_mode():
        y = torch.nn.functional.conv1d(x, kernel.float()[:, None], stride=down)
    y = y[0].t().reshape(-1)
    n_out = math.ceil(up * wave.size / down)
    return y[:n_out].numpy().astype(np.float32, copy=True)


# --- video ---------------------------------------------------------------------------------------


@dataclass
class VideoClip:
    """Frames sampled from a video, and its whole audio track."""

    frames: np.ndarray  # (N, H, W, 3) uint8 RGB
    frame_times: np.ndarray  # (N,) float seconds from the start of the clip
    audio: np.ndarray | None  # (S,) float32 mono at sample_rate, or None without an audio track
    sample_rate: int
    duration: float  # seconds
    fps: float


def load_video(
    source: MediaSource,
    *,
    num_frames: int = 16,
    sample_rate: int = 16000,
    require_audio: bool = True,
    decode_audio: bool = True,
) -> VideoClip:
    """Sample `num_frames` frames evenly over a video, and decode its audio track.

    Frame i is the one shown at time (i + 0.5) * duration / num_frames. The decoder seeks to the
    keyframe before each target and decodes forward; it keeps decoding instead when no keyframe
    lies between its position and the target, so no frame is decoded twice. Clips shorter than
    `num_frames` frames give each of their frames once. An array (N,H,W,3) is taken as frames at
    25 fps without audio. With ``decode_audio=False`` the audio track is left alone (``audio`` is
    None): a caller that reads it separately, with `load_video_audio`, can do so concurrently.
    """
    if num_frames < 1:
        raise ValueError("num_frames must be at least 1")
    if isinstance(source, np.ndarray):
        return _clip_from_array(source, num_frames, sample_rate, require_audio and decode_audio)
    name = _describe(source)
    _, checked = _expect(source, ("video",))
    import av

    try:
        with av.open(_open_input(checked), "r") as container:  # type: ignore[arg-type]
            vstream = next(s for s in container.streams.video if not _is_cover_art(s))
            audio = _video_audio(container, name, sample_rate) if decode_audio else None
            if audio is None and decode_audio and require_audio:
                raise NoAudioTrackError(_no_audio_message(name))
            frames, times, duration, fps = _sample_frames(container, vstream, num_frames, name)
    except av.error.FFmpegError as exc:
        raise _undecodable_video(name, exc) from None
    if audio is not None and require_audio:
        check_not_silent(audio, f"The audio track of {name}")
    return VideoClip(frames, times, audio, sample_rate, duration, fps)


def load_video_audio(source: MediaSource, *, sample_rate: int = 16000) -> np.ndarray:
    """The audio track of a video as float32 mono at `sample_rate`, checked like `load_video`.

    Raises NoAudioTrackError without a (non-empty) audio track, SilentAudioError for silence.
    """
    name = _describe(source)
    if isinstance(source, np.ndarray):
        raise NoAudioTrackError(
            "An array of frames has no audio track. Give the voice separately (audio=...)."
        )
    _, checked = _expect(source, ("video",))
    import av

    try:
        with av.open(_open_input(checked), "r") as container:  # type: ignore[arg-type]
            audio = _video_audio(container, name, sample_rate)
    except av.error.FFmpegError as exc:
        raise _undecodable_video(name, exc) from None
    if audio is None:
        raise NoAudioTrackError(_no_audio_message(name))
    check_not_silent(audio, f"The audio track of {name}")
    return audio


def _video_audio(container, name: str, sample_rate: int) -> np.ndarray | None:
    """The first audio stream of an open container at `sample_rate`; None if it has none."""
    if not container.streams.audio:
        return None
    wave, rate = _decode_audio_stream(container, container.streams.audio[0], name)
    return resample(wave, rate, sample_rate) if wave.size else None


def _undecodable_video(name: str, exc: BaseException) -> CorruptMediaError:
    return CorruptMediaError(
        f"{name} is a video that cannot be decoded ({_reason(exc)}); it is probably "
        "truncated or damaged. Re-export or re-download it."
    )


def _clip_from_array(
    frames: np.ndarray, num_frames: int, sample_rate: int, require_audio: bool
) -> VideoClip:
    if frames.ndim != 4 or frames.shape[3] != 3 or frames.shape[0] == 0:
        raise UnsupportedMediaError(
            f"Video frames must be a (N,H,W,3) uint8 array; got shape {frames.shape}."
        )
    if require_audio:
        raise NoAudioTrackError(
            "An array of frames has no audio track. Give the voice separately (audio=...) or "
            "pass require_audio=False."
        )
    fps = 25.0
    n = frames.shape[0]
    picks = np.unique(((np.arange(num_frames) + 0.5) * n / num_frames).astype(int).clip(0, n - 1))
    return VideoClip(
        frames=np.stack([_array_to_rgb(frames[i]) for i in picks]),
        frame_times=picks / fps,
        audio=None,
        sample_rate=sample_rate,
        duration=n / fps,
        fps=fps,
    )


#: Without a seek index, seek only when the next target is further ahead than this (seconds).
_SEEK_GAP_WITHOUT_INDEX = 2.0


def _sample_frames(container, stream, num_frames: int, name: str):
    """Seek-and-decode sampling of `num_frames` frames; returns frames, times, duration, fps."""
    time_base = stream.time_base
    fps = float(stream.average_rate or stream.guessed_rate or 25)
    start = stream.start_time if stream.start_time is not None else 0
    if stream.duration:
        duration = float(stream.duration * time_base)
    elif container.duration:
        duration = container.duration / 1e6
    else:
        duration = _scan_duration(container, stream, start)
    if duration <= 0:
        raise CorruptMediaError(f"{name} has a video stream without frames. Re-export the video.")
    frame_step = 1.0 / fps if fps > 0 else 0.04
    # Targets are stream timestamps of the centres of num_frames equal segments.
    targets = [
        start + int(((i + 0.5) * duration / num_frames) / time_base) for i in range(num_frames)
    ]
    keyframes = sorted(e.timestamp for e in stream.index_entries if e.is_keyframe)
    stream.codec_context.thread_type = "SLICE"  # frame threading adds latency after each seek
    step = max(1, int(frame_step / time_base))

    picked: dict[int, np.ndarray] = {}
    decoder = None
    position: int | None = None  # dts of the last packet fed to the decoder
    previous = None  # last decoded frame at or before the current target
    pending = None  # a decoded frame after the current target, kept for the next one
    for target in targets:
        if decoder is None or _should_seek(position, target, keyframes, time_base):
            container.seek(target, stream=stream, backward=True, any_frame=False)
            decoder = _decode(container, stream, targets, step)
            previous = pending = None
        chosen = None
        while True:
            if pending is None:
                item = next(decoder, None)
                if item is None:
                    chosen = previous  # end of stream: the last frame shown
                    break
                position, pending = item
            if pending.pts is not None and pending.pts > target:
                chosen = previous if previous is not None else pending
                break
            previous, pending = pending, None
        if chosen is None:
            continue
        key = chosen.pts if chosen.pts is not None else len(picked)
        if key not in picked:
            picked[key] = chosen.to_ndarray(format="rgb24")
    if not picked:
        raise CorruptMediaError(f"{name} has no decodable video frames. Re-export the video.")
    keys = sorted(picked)
    times = (
        np.array([max(0.0, float((k - start) * time_base)) for k in keys])
        if all(isinstance(k, int) for k in keys)
        else np.arange(len(keys)) * frame_step
    )
    return np.stack([picked[k] for k in keys]), times, float(duration), fps


def _should_seek(position: int | None, target: int, keyframes: list[int], time_base) -> bool:
    """Seek when a keyframe lies between the decoder's position and the target."""
    if position is None:
        return True
    if target <= position:
        return False
    if keyframes:
        import bisect

        i = bisect.bisect_right(keyframes, target) - 1
        return i >= 0 and keyframes[i] > position
    return float((target - position) * time_base) > _SEEK_GAP_WITHOUT_INDEX


def _decode(container, stream, targets: list[int], step: int):
    """Yield (packet dts, frame) for the video stream, skipping packets that fail to decode.

    Frames more than a frame away from every target are decoded only if other frames depend on
    them (the decoder drops non-reference frames there), which saves about a third of the work
    on H.264 with B-frames without changing any frame that is returned.
    """
    import bisect

    import av

    context = stream.codec_context
    for packet in container.demux(stream):
        if packet.pts is not None:
            i = bisect.bisect_left(targets, packet.pts - step)
            near = i < len(targets) and targets[i] < packet.pts + 2 * step
            context.skip_frame = "DEFAULT" if near else "NONREF"
        try:
            frames = packet.decode()
        except av.error.InvalidDataError:
            continue
        for frame in frames:
            yield (packet.dts if packet.dts is not None else frame.pts or 0), frame


def _scan_duration(container, stream, start: int) -> float:
    """Duration from the last packet timestamp, for containers that do not store one."""
    last = None
    for packet in container.demux(stream):
        if packet.pts is not None:
            last = packet.pts if last is None else max(last, packet.pts)
    container.seek(0)
    if last is None:
        return 0.0
    fps = float(stream.average_rate or stream.guessed_rate or 25)
    return float((last - start) * stream.time_base) + 1.0 / fps
