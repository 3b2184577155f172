"""Bytes to arrays: images (Pillow), audio (soundfile, PyAV for other containers), video (PyAV).

Everything a user hands in (a path, the bytes of a file, or an array already in memory) goes
through here, so this module owns the checks on bad media: the kind of a file is decided by its
content rather than its name, and every failure of the underlying decoders becomes a typed
:mod:`mmdeepfake.errors` exception whose message says what was wrong and what to do.

Video is sampled, not decoded in full: `num_frames` timestamps are spread evenly over the clip
and the decoder seeks to the keyframe before each one, then decodes forward to it, so the cost
depends on the number of frames asked for rather than the length of the clip. Frames are scaled
down while they are converted to RGB, so the memory they take is bounded whatever their stored
size, and turned upright per the display matrix (phone clips), as images are per EXIF.

The limits (duration, pixels, sample rates, file size) live in :mod:`mmdeepfake.media.limits`.
"""

from __future__ import annotations

__all__ = [
    "MAX_AUDIO_SECONDS",
    "MAX_FILE_BYTES",
    "MAX_IMAGE_PIXELS",
    "DecodedAudio",
    "MediaWarning",
    "VideoClip",
    "check_not_silent",
    "detect_media_kind",
    "load_audio",
    "load_image",
    "load_video",
    "load_video_audio",
    "read_audio",
    "read_video_audio",
    "resample",
]

import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from mmdeepfake.errors import (
    CorruptMediaError,
    MediaNotFoundError,
    MediaTooLargeError,
    NoAudioTrackError,
    SilentAudioError,
    UnsupportedMediaError,
)
from mmdeepfake.media import audio as audio_lib
from mmdeepfake.media import limits
from mmdeepfake.media.audio import DecodedAudio
from mmdeepfake.media.limits import MAX_AUDIO_SECONDS, MAX_FILE_BYTES, MAX_IMAGE_PIXELS
from mmdeepfake.media.resampling import resample

MediaSource = str | os.PathLike | bytes | bytearray | np.ndarray
MediaKind = Literal["image", "audio", "video"]

#: Audio whose RMS stays below this (about -80 dBFS) is treated as silence.
SILENCE_RMS = 1e-4

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
    if size > limits.MAX_FILE_BYTES:
        raise MediaTooLargeError(
            f"{_describe(source)} is {size / 1024**3:.1f} GiB, over the "
            f"{limits.MAX_FILE_BYTES / 1024**3:.0f}"
            " GiB limit. Trim or re-encode it to a smaller file."
        )
    return path


def _check_bytes(data: bytes | bytearray) -> bytes:
    if len(data) == 0:
        raise CorruptMediaError("The given media is empty (0 bytes). Pass the file's full content.")
    if len(data) > limits.MAX_FILE_BYTES:
        raise MediaTooLargeError(
            f"The given media is {len(data) / 1024**3:.1f} GiB, over the "
            f"{limits.MAX_FILE_BYTES / 1024**3:.0f} GiB limit. Trim or re-encode it."
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
            f"Cannot read media from a {type(source).__name__}. "
            "Pass a path, bytes or a numpy array."
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


def _check_array(array: np.ndarray) -> None:
    """Arrays of numbers with something in them; anything else is refused before use."""
    if array.dtype.kind not in "iuf":
        raise UnsupportedMediaError(
            f"An array of {array.dtype} values is not media. Pass numbers: images as (H,W,3) "
            "uint8, audio as (S,) float, video frames as (N,H,W,3) uint8."
        )
    if array.size == 0:
        raise CorruptMediaError(
            f"The given array of shape {array.shape} is empty. Pass an array with content."
        )


def _kind_of_array(array: np.ndarray) -> MediaKind:
    _check_array(array)
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


def load_image(source: MediaSource, *, max_pixels: int | None = None) -> np.ndarray:
    """Decode an image to an (H, W, 3) uint8 RGB array, upright per its EXIF orientation.

    Transparent images are composited on white; greyscale, palette and 16-bit images are
    converted. Images over `max_pixels` raise MediaTooLargeError before their pixels are
    decoded (decompression-bomb guard; default ``limits.MAX_IMAGE_PIXELS``).
    """
    max_pixels = limits.MAX_IMAGE_PIXELS if max_pixels is None else int(max_pixels)
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
            return _pil_to_rgb(ImageOps.exif_transpose(image))
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
    _check_array(array)
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
        if not np.isfinite(array).all():
            raise CorruptMediaError(
                "The given image array contains NaN or infinite values. Pass finite pixel "
                "values (uint8 0-255 or float 0-1)."
            )
        if float(array.max()) <= 1.0:
            array = array * 255.0
        array = np.clip(array, 0, 255).round().astype(np.uint8)
    return np.ascontiguousarray(array)


# --- audio ---------------------------------------------------------------------------------------


class MediaWarning(UserWarning):
    """Something was wrong with the media but a result could still be computed from it."""


def read_audio(
    source: MediaSource,
    *,
    sample_rate: int = 16000,
    source_rate: int | None = None,
    check_silence: bool = True,
    max_seconds: float | None = None,
) -> DecodedAudio:
    """Decode audio to float32 mono at `sample_rate`, with notes on damage found on the way.

    Files go through soundfile (wav/flac/ogg/mp3/aiff) and otherwise PyAV (m4a/aac/opus, and the
    audio track of a video file), block by block. Arrays are taken as sampled at `source_rate`
    (default `sample_rate`); integer arrays are scaled from their full range, (S, C) or (C, S)
    arrays are mixed down. Recordings longer than `max_seconds` (default
    ``limits.MAX_AUDIO_SECONDS``) raise MediaTooLargeError, from the header when it tells the
    length; rates outside [MIN_SAMPLE_RATE, MAX_SAMPLE_RATE] and NaN, infinite or absurdly loud
    samples raise typed errors; silence raises SilentAudioError unless `check_silence` is false.
    """
    max_seconds = limits.MAX_AUDIO_SECONDS if max_seconds is None else float(max_seconds)
    name = _describe(source)
    if isinstance(source, np.ndarray):
        decoded = _audio_from_array(
            source, name, source_rate or sample_rate, sample_rate, max_seconds
        )
    else:
        kind, checked = _expect(source, ("audio", "video"))
        decoded = _decode_audio_file(checked, name, kind, sample_rate, max_seconds)  # type: ignore[arg-type]
    if decoded.wave.size == 0:
        raise CorruptMediaError(f"{name} contains no audio samples. Pass a non-empty recording.")
    if check_silence:
        check_not_silent(decoded.wave, name)
    return decoded


def load_audio(
    source: MediaSource,
    *,
    sample_rate: int = 16000,
    source_rate: int | None = None,
    check_silence: bool = True,
    max_seconds: float | None = None,
) -> np.ndarray:
    """`read_audio`'s wave alone; its notes on damaged input are issued as MediaWarning."""
    decoded = read_audio(
        source,
        sample_rate=sample_rate,
        source_rate=source_rate,
        check_silence=check_silence,
        max_seconds=max_seconds,
    )
    for note in decoded.warnings:
        warnings.warn(note, MediaWarning, stacklevel=2)
    return decoded.wave


def check_not_silent(wave: np.ndarray, name: str = "The audio") -> None:
    """Raise SilentAudioError when `wave` carries no usable signal (RMS below SILENCE_RMS)."""
    rms = _rms(wave)
    if not np.isfinite(rms) or rms < SILENCE_RMS:
        raise SilentAudioError(
            f"{name} is silent (RMS {rms:.1e}, below {SILENCE_RMS:.0e}): there is no voice to "
            "analyse. Check the recording level or the microphone, or pass another file."
        )


def _rms(wave: np.ndarray, block: int = 1 << 20) -> float:
    """Root mean square in float64, a block at a time (no float64 copy of an hour of audio)."""
    if not wave.size:
        return 0.0
    total = 0.0
    for start in range(0, wave.size, block):
        piece = wave[start : start + block].astype(np.float64)
        total += float(np.dot(piece, piece))
    return float(np.sqrt(total / wave.size))


def _audio_from_array(
    array: np.ndarray, name: str, rate: int, sample_rate: int, max_seconds: float
) -> DecodedAudio:
    _check_array(array)
    if array.ndim == 2:
        # Channels are the short axis: (S, C) from soundfile, (C, S) from PyAV or torch.
        if array.shape[0] < array.shape[1]:
            array = array.T
    elif array.ndim != 1:
        raise UnsupportedMediaError(
            f"An audio array must be (S,) or (S, channels); got shape {array.shape}."
        )
    seconds = array.shape[0] / rate if rate > 0 else 0.0
    if seconds > max_seconds:
        raise MediaTooLargeError(audio_lib.too_long_message(name, seconds, max_seconds))
    sink = audio_lib.AudioSink(name, rate, sample_rate, max_seconds, seconds)
    for start in range(0, array.shape[0], audio_lib.BLOCK_FRAMES):
        sink.push(array[start : start + audio_lib.BLOCK_FRAMES])
    return DecodedAudio(sink.finish(), sample_rate)


def _decode_audio_file(
    source: str | os.PathLike | bytes, name: str, kind: str, sample_rate: int, max_seconds: float
) -> DecodedAudio:
    if kind == "audio":
        decoded = audio_lib.decode_with_soundfile(
            _open_input(source), name, sample_rate, max_seconds
        )
        if decoded is not None:
            return decoded
    import av

    try:
        with av.open(_open_input(source), "r") as container:
            return audio_lib.decode_with_pyav(container, name, sample_rate, max_seconds)
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
    max_frame_pixels: int | None = None,
    max_total_pixels: int | None = None,
) -> VideoClip:
    """Sample `num_frames` frames evenly over a video, and decode its audio track.

    Frame i is the one shown at time (i + 0.5) * duration / num_frames. The decoder seeks to the
    keyframe before each target and decodes forward; it keeps decoding instead when no keyframe
    lies between its position and the target, so no frame is decoded twice. Clips shorter than
    `num_frames` frames give each of their frames once. An array (N,H,W,3) is taken as frames at
    25 fps without audio. With ``decode_audio=False`` the audio track is left alone (``audio`` is
    None): a caller that reads it separately, with `load_video_audio`, can do so concurrently.

    Frames stored larger than `max_frame_pixels` (default ``limits.MAX_FRAME_PIXELS``) raise
    MediaTooLargeError before any is decoded; the others are scaled down while converted to RGB,
    to at most ``limits.MAX_DECODED_FRAME_PIXELS`` each and `max_total_pixels` (default
    ``limits.MAX_VIDEO_PIXELS``) for all of them. Frames are turned upright per the stream's
    display matrix (the rotation phones record).
    """
    if num_frames < 1:
        raise ValueError("num_frames must be at least 1")
    caps = _PixelCaps.of(num_frames, max_frame_pixels, max_total_pixels)
    if isinstance(source, np.ndarray):
        return _clip_from_array(
            source, num_frames, sample_rate, require_audio and decode_audio, caps
        )
    name = _describe(source)
    _, checked = _expect(source, ("video",))
    import av

    try:
        with av.open(_open_input(checked), "r") as container:  # type: ignore[arg-type]
            vstream = next(s for s in container.streams.video if not _is_cover_art(s))
            context = vstream.codec_context
            size = caps.decoded_size(context.width, context.height, name)
            audio = None
            if decode_audio:
                audio = _video_audio(container, name, sample_rate, limits.MAX_AUDIO_SECONDS)
            if audio is None and decode_audio and require_audio:
                raise NoAudioTrackError(_no_audio_message(name))
            frames, times, duration, fps = _sample_frames(
                container, vstream, num_frames, name, size, caps
            )
    except av.error.FFmpegError as exc:
        raise _undecodable_video(name, exc) from None
    wave = None if audio is None else audio.wave
    if wave is not None and require_audio:
        check_not_silent(wave, f"The audio track of {name}")
    return VideoClip(frames, times, wave, sample_rate, duration, fps)


def read_video_audio(
    source: MediaSource, *, sample_rate: int = 16000, max_seconds: float | None = None
) -> DecodedAudio:
    """The audio track of a video as float32 mono at `sample_rate`, with notes on damage.

    Raises NoAudioTrackError without a (non-empty) audio track, SilentAudioError for silence,
    MediaTooLargeError past `max_seconds` (default ``limits.MAX_AUDIO_SECONDS``).
    """
    max_seconds = limits.MAX_AUDIO_SECONDS if max_seconds is None else float(max_seconds)
    name = _describe(source)
    if isinstance(source, np.ndarray):
        raise NoAudioTrackError(
            "An array of frames has no audio track. Give the voice separately (audio=...)."
        )
    _, checked = _expect(source, ("video",))
    import av

    try:
        with av.open(_open_input(checked), "r") as container:  # type: ignore[arg-type]
            audio = _video_audio(container, name, sample_rate, max_seconds)
    except av.error.FFmpegError as exc:
        raise _undecodable_video(name, exc) from None
    if audio is None:
        raise NoAudioTrackError(_no_audio_message(name))
    check_not_silent(audio.wave, f"The audio track of {name}")
    return audio


def load_video_audio(source: MediaSource, *, sample_rate: int = 16000) -> np.ndarray:
    """`read_video_audio`'s wave alone; its notes on damage are issued as MediaWarning."""
    audio = read_video_audio(source, sample_rate=sample_rate)
    for note in audio.warnings:
        warnings.warn(note, MediaWarning, stacklevel=2)
    return audio.wave


def _video_audio(container, name: str, sample_rate: int, max_seconds: float) -> DecodedAudio | None:
    """The first audio stream of an open container at `sample_rate`; None if it has none."""
    if not container.streams.audio:
        return None
    audio = audio_lib.decode_with_pyav(container, name, sample_rate, max_seconds)
    return audio if audio.wave.size else None


@dataclass(frozen=True)
class _PixelCaps:
    """The pixel limits of one `load_video` call."""

    frame: int  # largest stored frame accepted
    decoded: int  # largest frame returned

    @classmethod
    def of(cls, num_frames: int, max_frame: int | None, max_total: int | None) -> _PixelCaps:
        frame = limits.MAX_FRAME_PIXELS if max_frame is None else int(max_frame)
        total = limits.MAX_VIDEO_PIXELS if max_total is None else int(max_total)
        return cls(frame, max(1, min(limits.MAX_DECODED_FRAME_PIXELS, frame, total // num_frames)))

    def check(self, width: int, height: int, name: str) -> None:
        if width * height > self.frame:
            raise MediaTooLargeError(
                f"{name} has {width}x{height} frames ({width * height / 1e6:.0f} million pixels), "
                f"over the limit of {self.frame / 1e6:.1f} million pixels per frame "
                "(mmdeepfake.media.limits.MAX_FRAME_PIXELS). Scale the video down first, or pass "
                "a larger max_frame_pixels if you trust the file."
            )

    def decoded_size(self, width: int, height: int, name: str) -> tuple[int, int] | None:
        """(width, height) to convert frames to, or None to keep them as stored."""
        self.check(width, height, name)
        if width <= 0 or height <= 0 or width * height <= self.decoded:
            return None
        scale = (self.decoded / (width * height)) ** 0.5
        return max(2, int(width * scale)), max(2, int(height * scale))


def _undecodable_video(name: str, exc: BaseException) -> CorruptMediaError:
    return CorruptMediaError(
        f"{name} is a video that cannot be decoded ({_reason(exc)}); it is probably "
        "truncated or damaged. Re-export or re-download it."
    )


def _clip_from_array(
    frames: np.ndarray, num_frames: int, sample_rate: int, require_audio: bool, caps: _PixelCaps
) -> VideoClip:
    _check_array(frames)
    if frames.ndim != 4 or frames.shape[3] != 3 or frames.shape[0] == 0:
        raise UnsupportedMediaError(
            f"Video frames must be a (N,H,W,3) uint8 array; got shape {frames.shape}."
        )
    caps.check(frames.shape[2], frames.shape[1], "The given array of frames")
    if require_audio:
        raise NoAudioTrackError(
            "An array of frames has no audio track. Give the voice separately (audio=...) or "
            "pass require_audio=False."
        )
    fps = 25.0
    n = frames.shape[0]
    picks = np.unique(((np.arange(num_frames) + 0.5) * n / num_frames).astype(int).clip(0, n - 1))
    size = caps.decoded_size(frames.shape[2], frames.shape[1], "The given array of frames")
    return VideoClip(
        frames=np.stack([_fit_frame(_array_to_rgb(frames[i]), size) for i in picks]),
        frame_times=picks / fps,
        audio=None,
        sample_rate=sample_rate,
        duration=n / fps,
        fps=fps,
    )


def _fit_frame(frame: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    """An RGB frame scaled down to `size` (width, height) with area averaging."""
    if size is None:
        return frame
    from PIL import Image

    return np.asarray(Image.fromarray(frame).resize(size, Image.Resampling.BOX), dtype=np.uint8)


#: Without a seek index, seek only when the next target is further ahead than this (seconds).
_SEEK_GAP_WITHOUT_INDEX = 2.0


def _sample_frames(
    container, stream, num_frames: int, name: str, size: tuple[int, int] | None, caps: _PixelCaps
):
    """Seek-and-decode sampling of `num_frames` frames; returns frames, times, duration, fps.

    Frames are converted to RGB at `size` (width, height; None keeps the stored size), upright.
    """
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
            picked[key] = _frame_to_rgb(chosen, size, caps, name)
    if not picked:
        raise CorruptMediaError(f"{name} has no decodable video frames. Re-export the video.")
    if len({frame.shape for frame in picked.values()}) > 1:
        raise CorruptMediaError(
            f"{name} changes its frame size or rotation mid-stream; mmdeepfake needs frames of "
            "one size. Re-export the video."
        )
    keys = sorted(picked)
    times = (
        np.array([max(0.0, float((k - start) * time_base)) for k in keys])
        if all(isinstance(k, int) for k in keys)
        else np.arange(len(keys)) * frame_step
    )
    return np.stack([picked[k] for k in keys]), times, float(duration), fps


def _frame_to_rgb(frame, size: tuple[int, int] | None, caps: _PixelCaps, name: str) -> np.ndarray:
    """One decoded frame as upright (H, W, 3) uint8 RGB, scaled down to `size`."""
    caps.check(frame.width, frame.height, name)  # a stream may change size mid-way
    if size is None and frame.width * frame.height > caps.decoded:
        size = caps.decoded_size(frame.width, frame.height, name)
    if size is None:
        rgb = frame.to_ndarray(format="rgb24")
    else:
        rgb = frame.to_ndarray(format="rgb24", width=size[0], height=size[1], interpolation="AREA")
    turns = round((frame.rotation or 0) / 90) % 4  # counter-clockwise quarter turns to display
    return np.ascontiguousarray(np.rot90(rgb, turns)) if turns else rgb


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
