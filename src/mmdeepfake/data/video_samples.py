"""Training samples read straight from ``videos/``: each video decoded as ``predict`` decodes it.

A dataset in the training layout may hold clips as videos only
(``videos/{split}/{label}/<clip>.mp4``), without the face frames and recordings that
``mmdeepfake prepare`` extracts. Training then reads such a video into memory (from a folder or
S3; never to disk) and decodes it on the fly with the model's own preprocessing, exactly as
``predict`` does: ``num_frames`` frames spread evenly over the clip, the main face of each
found by the same detector and cropped with the same margin and size, the audio track resampled
to 16 kHz mono. One video gives one sample per frame with a face, each paired with the clip's
own voice, so the tensors are those the extracted files of that clip would give.

A clip with face frames in ``frames/`` (same split and label) is read from the extracted files
and its video is not decoded. Decoding a video costs far more than reading a JPEG and a WAV,
every epoch again; ``mmdeepfake prepare`` is the faster path for repeated epochs.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch

from mmdeepfake.config import PreprocessConfig
from mmdeepfake.data.clip_labels import ClipLabel
from mmdeepfake.data.layout import LABEL_NAMES, DatasetIndex, PairedSample, clip_id, pair_samples
from mmdeepfake.data.storage import KeyNotFoundError
from mmdeepfake.data.streaming import Reader, SkippedSample, StreamedSample, voice_window
from mmdeepfake.errors import DatasetError, StorageError

__all__ = [
    "DECODES_AT_ONCE",
    "MIX_VIDEOS",
    "Sample",
    "VideoSample",
    "decode_video_sample",
    "frames_per_video",
    "load_video_sample",
    "mix_items",
    "preview_face",
    "preview_voice",
    "split_samples",
    "video_samples",
]

log = logging.getLogger(__name__)

#: Videos whose frames are shuffled together in training. One video gives all its frames at
#: once; without mixing, a batch would hold the frames of one or two clips only.
MIX_VIDEOS = 8
#: Videos decoded at once per process. Reads still run ``prefetch`` deep; decoding is CPU-bound
#: (more at once gains nothing) and each decode holds its sampled frames (16 full-HD frames are
#: 100 MB), so this bounds the loader's memory whatever the prefetch depth.
DECODES_AT_ONCE = 4
_decoding = threading.BoundedSemaphore(DECODES_AT_ONCE)

T = TypeVar("T")


@dataclass(frozen=True)
class VideoSample:
    """One video of the dataset: its frames with a face become samples, each paired with the
    video's own voice (a true pair). Read by the streaming loader like a :class:`PairedSample`.

    ``image_label`` and ``audio_label`` are the targets of the image and audio heads
    (``visual_fake``/``audio_fake`` from ``labels/clips.csv``; -1: the head learns ``label``).
    """

    video_key: str
    label: int  # 0 real, 1 fake
    face_emotion: int  # index into EMOTIONS, -1 unknown
    voice_emotion: int  # index into EMOTIONS, -1 unknown
    split: str = "train"
    image_label: int = -1
    audio_label: int = -1

    @property
    def image_key(self) -> str:
        """Where the faces come from (the video), as a :class:`PairedSample` names its image."""
        return self.video_key

    @property
    def audio_key(self) -> str:
        """Where the voice comes from (the same video)."""
        return self.video_key

    @property
    def true_pair(self) -> bool:
        """Always: face and voice come from one clip."""
        return True


#: What one split of a dataset trains on: extracted face frames (each a sample) and videos.
Sample = PairedSample | VideoSample


def frames_per_video(preprocess: PreprocessConfig | None) -> int:
    """Frames a video is sampled at: the model's ``num_frames``, as ``predict`` samples it."""
    return (preprocess or PreprocessConfig()).num_frames


def video_samples(
    index: DatasetIndex,
    split: str,
    *,
    clip_labels: Mapping[str, ClipLabel] | None = None,
) -> list[VideoSample]:
    """The videos of ``split`` whose clips have no face frames in ``frames/`` (same split and
    label), in a fixed order; a clip with extracted frames is read from them instead.

    A path row of ``labels/emotions.csv`` for the video, or a clip-id row, gives both the face
    and the voice emotion; ``clip_labels`` gives the heads' per-modality targets.
    """
    found: list[VideoSample] = []
    for label_index, label in enumerate(LABEL_NAMES):
        extracted = {clip_id(key) for key in index.keys("frames", split, label)}
        for key in index.keys("videos", split, label):
            clip = clip_id(key)
            if clip in extracted:
                continue
            listed = clip_labels.get(clip) if clip_labels else None
            image_label, audio_label = listed.modality_targets() if listed else (-1, -1)
            emotion = index.emotion_of(key)
            found.append(
                VideoSample(
                    video_key=key,
                    label=label_index,
                    face_emotion=emotion,
                    voice_emotion=emotion,
                    split=split,
                    image_label=image_label,
                    audio_label=audio_label,
                )
            )
    return found


def split_samples(
    index: DatasetIndex,
    split: str,
    seed: int = 0,
    *,
    clip_labels: Mapping[str, ClipLabel] | None = None,
) -> list[Sample]:
    """Every sample training reads from ``split``: the face frames paired by
    :func:`~mmdeepfake.data.layout.pair_samples`, then the videos of clips without frames.

    Raises DatasetError when the split has neither face frames nor videos, or a label with
    frames has no audio (see ``pair_samples``).
    """
    videos = video_samples(index, split, clip_labels=clip_labels)
    has_frames = any(index.keys("frames", split, label) for label in LABEL_NAMES)
    if not has_frames and not videos:
        raise DatasetError(
            f"split {split!r} of the dataset at {index.where() or 'the storage root'} has no "
            f"face images (frames/{split}/real/, frames/{split}/fake/) and no videos "
            f"(videos/{split}/real/, videos/{split}/fake/)"
        )
    pairs: list[Sample] = list(
        pair_samples(index, split, seed, clip_labels=clip_labels) if has_frames else []
    )
    if videos:
        log.info(
            "split %s: %d clips read from videos/ and decoded while training (slower than "
            "extracted frames; `mmdeepfake prepare` extracts them once)",
            split,
            len(videos),
        )
    return pairs + videos


def decode_video_sample(
    data: bytes,
    *,
    face_margin: float | None = None,
    preprocess: PreprocessConfig | None = None,
) -> tuple[torch.Tensor, np.ndarray]:
    """Video bytes -> the normalised face crops (F, 3, S, S) of its frames with a face, and its
    voice (float32 mono at 16 kHz), decoded as ``predict`` decodes a video.

    ``face_margin`` and ``preprocess`` are the model's (``Detector.face_margin``,
    ``Detector.preprocess``; the pipeline's defaults when None). Raises the media errors of
    :mod:`mmdeepfake.media.decode` (a broken video, no audio track, silence) and
    NoFaceFoundError when no frame shows a face.
    """
    from mmdeepfake import evidence
    from mmdeepfake.media import decode, faces, features

    settings = preprocess or PreprocessConfig()
    image = evidence.image_evidence_from_video(
        data,
        num_frames=settings.num_frames,
        detector=faces.FaceDetector.shared(**settings.face_detector_kwargs()),
        margin=faces.FACE_MARGIN if face_margin is None else face_margin,
    )
    wave = decode.read_video_audio(data, sample_rate=features.SAMPLE_RATE).wave
    crops = features.faces_to_tensor(
        image.crops,
        size=settings.image_size,
        mean=settings.image_mean,
        std=settings.image_std,
    )
    return crops, wave


def load_video_sample(
    sample: VideoSample,
    reader: Reader,
    *,
    face_margin: float | None = None,
    preprocess: PreprocessConfig | None = None,
    trim_silence: bool = False,
) -> list[StreamedSample | SkippedSample]:
    """Read and decode one video: a :class:`StreamedSample` per frame with a face, or one
    :class:`SkippedSample` when the video is missing, broken, has no face, no voice or silence.

    Failures that are not the video's fault (credentials, a vanished bucket, the network)
    raise, as for extracted files.
    """
    key = sample.video_key
    try:
        data = reader(key)
        with _decoding:
            faces, wave = decode_video_sample(data, face_margin=face_margin, preprocess=preprocess)
    except KeyNotFoundError as exc:
        return [SkippedSample(key=key, reason=f"{type(exc).__name__}: {exc}")]
    except StorageError:
        raise
    except Exception as exc:  # noqa: BLE001 - any decoder failure is this video's fault
        return [SkippedSample(key=key, reason=f"{type(exc).__name__}: {exc}")]
    voice = voice_window(wave, trim_silence=trim_silence)
    return [
        StreamedSample(
            faces=face,
            face_detected=True,
            wave=voice,
            label=sample.label,
            face_emotion=sample.face_emotion,
            voice_emotion=sample.voice_emotion,
            image_key=key,
            audio_key=key,
            image_label=sample.image_label,
            audio_label=sample.audio_label,
        )
        for face in faces
    ]


def mix_items(items: Iterable[T], size: int, rng: np.random.Generator) -> Iterator[T]:
    """``items`` in a shuffled order, through a buffer of ``size`` items (a shuffle buffer).

    Each item leaves at a random place among the next ``size``, so the frames of one video,
    which arrive together, spread over several batches. Memory is ``size`` items.
    """
    buffer: list[T] = []
    for item in items:
        buffer.append(item)
        if len(buffer) >= size:
            pick = int(rng.integers(len(buffer)))
            buffer[pick], buffer[-1] = buffer[-1], buffer[pick]
            yield buffer.pop()
    order = rng.permutation(len(buffer))
    yield from (buffer[i] for i in order)


def preview_face(data: bytes) -> np.ndarray:
    """One face crop (224, 224, 3) uint8 from the middle of a video, for the training plots."""
    from mmdeepfake import evidence

    return evidence.image_evidence_from_video(data, num_frames=1).crops[0]


def preview_voice(data: bytes) -> np.ndarray:
    """The voice of a video (float32 mono at 16 kHz), for the training plots."""
    from mmdeepfake.media import decode, features

    return decode.read_video_audio(data, sample_rate=features.SAMPLE_RATE).wave
