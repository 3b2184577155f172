"""One clip into the training layout: its video read into memory, its faces and voice written.

The frames and the voice are taken exactly as ``predict`` takes them (the same decoder, the
same face detector with the default :class:`~mmdeepfake.config.PreprocessConfig` settings, the
same crop margin and size), so a model trained on the prepared layout sees faces framed as it
will at inference. Nothing touches local disk: the video is read into memory from the source
storage and every output is encoded in memory and written straight to the destination.
"""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from mmdeepfake import evidence
from mmdeepfake.data.storage import Storage
from mmdeepfake.errors import (
    CorruptMediaError,
    MediaError,
    MediaTooLargeError,
    NoAudioTrackError,
    NoFaceFoundError,
    SilentAudioError,
    StorageError,
    UnsupportedMediaError,
)
from mmdeepfake.media import decode, faces
from mmdeepfake.prepare.clips import Clip

__all__ = ["SKIP_REASONS", "ClipOutcome", "audio_key", "frame_key", "prepare_clip"]

#: Why a clip is skipped, by the error that stopped it (the first match wins).
SKIP_REASONS: tuple[tuple[type[Exception], str], ...] = (
    (NoFaceFoundError, "no face"),
    (NoAudioTrackError, "no audio"),
    (SilentAudioError, "silent audio"),
    (MediaTooLargeError, "too large"),
    (CorruptMediaError, "broken video"),
    (UnsupportedMediaError, "broken video"),
    (MediaError, "unusable media"),
    (StorageError, "unreadable"),
)
WRITTEN = "written"
JPEG_QUALITY = 95
#: Frames of one clip written at once (S3 requests overlap; a local disk does not mind).
WRITE_THREADS = 8


@dataclass(frozen=True)
class ClipOutcome:
    """What became of one clip: ``written`` with its frame count, or a skip reason."""

    clip_id: str
    outcome: str
    frames: int = 0
    message: str = ""


def frame_key(clip: Clip, k: int) -> str:
    """Where frame ``k`` of a clip goes in the layout."""
    return f"frames/{clip.split}/{clip.label}/{clip.clip_id}_{k}.jpg"


def audio_key(clip: Clip) -> str:
    """Where a clip's voice goes in the layout."""
    return f"audio/{clip.split}/{clip.label}/{clip.clip_id}.wav"


def prepare_clip(
    clip: Clip,
    source: Storage,
    dest: Storage,
    *,
    frames_per_clip: int,
    detector: faces.FaceDetector,
    sample_rate: int,
) -> ClipOutcome:
    """Decode one clip and write its face crops and voice; a bad clip gives a skip outcome."""
    try:
        video = source.read_bytes(clip.source)
        wave = decode.read_video_audio(video, sample_rate=sample_rate).wave
        image = evidence.image_evidence_from_video(
            video, num_frames=frames_per_clip, detector=detector, margin=faces.FACE_MARGIN
        )
    except (MediaError, StorageError) as exc:
        reason = next(why for kind, why in SKIP_REASONS if isinstance(exc, kind))
        return ClipOutcome(clip.clip_id, reason, message=str(exc))
    # The voice first, here (it also opens the destination's client in this thread); then the
    # frames side by side, since on S3 each write is a request that mostly waits.
    dest.write_bytes(audio_key(clip), _wav(wave, sample_rate))
    frames = [(frame_key(clip, k), _jpeg(crop)) for k, crop in enumerate(image.crops)]
    with ThreadPoolExecutor(max_workers=min(WRITE_THREADS, len(frames))) as pool:
        list(pool.map(lambda item: dest.write_bytes(*item), frames))
    return ClipOutcome(clip.clip_id, WRITTEN, frames=len(frames))


def _jpeg(crop: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(crop).save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


def _wav(wave: np.ndarray, sample_rate: int) -> bytes:
    import soundfile

    buffer = io.BytesIO()
    soundfile.write(buffer, wave, sample_rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()
