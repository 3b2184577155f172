"""Turn user media into the evidence the model scores: face crops, voice windows, a timeline.

A video gives both modalities at once; a face image (or several) plus a voice recording gives
them separately. Each half is gathered on its own, the image modality's face crops as an
:class:`ImageEvidence` and the audio modality's voice as an :class:`AudioEvidence` (independent
work, so a caller can run the two concurrently), and :func:`combine` joins them into an
:class:`Evidence`: the face crops found, the voice cut into fixed windows, and for every window
the faces that belong to it. Segments follow the voice windows because a voice window is the
smallest unit the audio encoder scores; each segment is paired with the faces seen during it
(for a video) or with every face (for still images).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from mmdeepfake.encoders.base import EncoderOutput
from mmdeepfake.errors import DETECT_FACES, NoFaceFoundError
from mmdeepfake.media import decode, faces, features
from mmdeepfake.model import ModelOutput


@dataclass
class ImageEvidence:
    """The image half: the main face of each analysed frame or image."""

    crops: np.ndarray  # (F, 224, 224, 3) uint8 face crops, one per frame with a face
    face_frames: list[int]  # index of the source frame of each crop
    face_times: list[float | None]  # time of each crop in the clip, None for still images
    boxes: list[faces.FaceBox]  # detector boxes of each crop (whole image when not detected)
    frames_analysed: int
    duration: float | None  # of the video; None for still images
    warnings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)


@dataclass
class AudioEvidence:
    """The audio half: the voice and the fixed windows the audio encoder scores."""

    wave: np.ndarray  # mono float32 at features.SAMPLE_RATE
    windows: list[tuple[int, int]]  # sample ranges of the voice windows
    warnings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)


@dataclass
class Evidence:
    """Everything about one input that the model needs, plus what the explanation shows."""

    crops: np.ndarray  # (F, 224, 224, 3) uint8 face crops, one per frame with a face
    face_frames: list[int]  # index of the source frame of each crop
    face_times: list[float | None]  # time of each crop in the clip, None for still images
    boxes: list[faces.FaceBox]  # detector boxes of each crop (whole image when not detected)
    wave: np.ndarray  # mono float32 voice at features.SAMPLE_RATE
    windows: list[tuple[int, int]]  # sample ranges of the voice windows
    groups: list[list[int]]  # for each window, indices into ``crops`` paired with it
    frames_analysed: int
    duration: float
    warnings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def window_times(self) -> list[tuple[float, float]]:
        rate = features.SAMPLE_RATE
        return [(start / rate, min(end, len(self.wave)) / rate) for start, end in self.windows]


class _Stopwatch:
    """Accumulates wall time per pipeline stage, for the timings shown to users and benchmarks."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}

    def run(self, stage: str, fn: Callable, *args, **kwargs):
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            self.timings[stage] = self.timings.get(stage, 0.0) + time.perf_counter() - start


def from_video(
    source: decode.MediaSource,
    *,
    num_frames: int,
    detect_faces: bool = True,
    detector: faces.FaceDetector | None = None,
    margin: float = faces.FACE_MARGIN,
) -> Evidence:
    """Sample frames and the audio track of a video and find the face in each frame."""
    audio_half = audio_evidence_from_video(source)
    image_half = image_evidence_from_video(
        source, num_frames=num_frames, detect_faces=detect_faces, detector=detector, margin=margin
    )
    return combine(image_half, audio_half)


def from_pair(
    images: Sequence[decode.MediaSource],
    audio: decode.MediaSource,
    *,
    detect_faces: bool = True,
    detector: faces.FaceDetector | None = None,
    margin: float = faces.FACE_MARGIN,
) -> Evidence:
    """Load still face images and a separate voice recording."""
    audio_half = audio_evidence_from_recording(audio)
    image_half = image_evidence_from_images(
        images, detect_faces=detect_faces, detector=detector, margin=margin
    )
    return combine(image_half, audio_half)


def image_evidence_from_video(
    source: decode.MediaSource,
    *,
    num_frames: int,
    detect_faces: bool = True,
    detector: faces.FaceDetector | None = None,
    margin: float = faces.FACE_MARGIN,
) -> ImageEvidence:
    """Sample `num_frames` frames of a video (not its audio) and find the face in each.

    ``margin`` frames the crops (see ``faces.crop_faces``); pass the image encoder's
    ``face_margin``.
    """
    watch = _Stopwatch()
    clip = watch.run("decode", decode.load_video, source, num_frames=num_frames, decode_audio=False)
    times: list[float | None] = [float(t) for t in clip.frame_times]
    return _find_faces(
        list(clip.frames), times, clip.duration, detect_faces, detector, watch, margin
    )


def image_evidence_from_images(
    images: Sequence[decode.MediaSource],
    *,
    detect_faces: bool = True,
    detector: faces.FaceDetector | None = None,
    margin: float = faces.FACE_MARGIN,
) -> ImageEvidence:
    """Load still face images and find the face in each (crops framed by ``margin``)."""
    watch = _Stopwatch()
    frames = watch.run("decode", lambda: [decode.load_image(image) for image in images])
    return _find_faces(frames, [None] * len(frames), None, detect_faces, detector, watch, margin)


def audio_evidence_from_video(source: decode.MediaSource) -> AudioEvidence:
    """The audio track of a video, cut into voice windows."""
    watch = _Stopwatch()
    audio = watch.run(
        "audio_decode", decode.read_video_audio, source, sample_rate=features.SAMPLE_RATE
    )
    return _cut_into_windows(audio, watch)


def audio_evidence_from_recording(audio: decode.MediaSource) -> AudioEvidence:
    """A voice recording (file, bytes or 16 kHz array), cut into voice windows."""
    watch = _Stopwatch()
    decoded = watch.run("audio_decode", decode.read_audio, audio, sample_rate=features.SAMPLE_RATE)
    return _cut_into_windows(decoded, watch)


def combine(image_half: ImageEvidence, audio_half: AudioEvidence) -> Evidence:
    """Join the two halves, pairing every voice window with the faces seen during it."""
    duration = image_half.duration
    if duration is None:
        duration = len(audio_half.wave) / features.SAMPLE_RATE
    evidence = Evidence(
        crops=image_half.crops,
        face_frames=image_half.face_frames,
        face_times=image_half.face_times,
        boxes=image_half.boxes,
        wave=audio_half.wave,
        windows=audio_half.windows,
        groups=[],
        frames_analysed=image_half.frames_analysed,
        duration=duration,
        warnings=image_half.warnings + audio_half.warnings,
        timings={**image_half.timings, **audio_half.timings},
    )
    evidence.groups = _group_faces_by_window(evidence)
    return evidence


def _cut_into_windows(audio: decode.DecodedAudio, watch: _Stopwatch) -> AudioEvidence:
    wave = audio.wave
    warnings = list(audio.warnings)
    if len(wave) < features.WINDOW_SAMPLES:
        warnings.append(
            f"the voice lasts {len(wave) / features.SAMPLE_RATE:.1f} s, shorter than one "
            f"{features.WINDOW_SECONDS:.1f} s analysis window; it was padded"
        )
    return AudioEvidence(
        wave=wave, windows=features.audio_windows(wave), warnings=warnings, timings=watch.timings
    )


def _find_faces(
    frames: list[np.ndarray],
    times: list[float | None],
    duration: float | None,
    detect_faces: bool,
    detector: faces.FaceDetector | None,
    watch: _Stopwatch,
    margin: float = faces.FACE_MARGIN,
) -> ImageEvidence:
    warnings: list[str] = []
    if detect_faces:
        detector = detector or faces.FaceDetector.shared()
        # Frames of one video are tracked between detections; unrelated stills are not.
        track = all(t is not None for t in times)
        boxes = watch.run("face_detection", detector.detect, frames, track=track)
        kept = [i for i, box in enumerate(boxes) if box is not None]
        if not kept:
            what = "frame" if len(frames) > 1 else "image"
            raise NoFaceFoundError(
                f"No face was found in any of the {len(frames)} analysed {what}s. Use media where "
                "a face is clearly visible.",
                hint=DETECT_FACES,
            )
        if len(kept) < len(frames):
            warnings.append(f"no face in {len(frames) - len(kept)} of {len(frames)} frames")
        crops = watch.run(
            "face_detection",
            faces.crop_faces,
            [frames[i] for i in kept],
            [boxes[i] for i in kept],
            margin=margin,
        )
        kept_boxes = [boxes[i] for i in kept]
    else:
        kept = list(range(len(frames)))
        crops = watch.run(
            "face_detection", lambda: np.stack([faces.center_crop_face(f) for f in frames])
        )
        kept_boxes = [
            faces.FaceBox(0.0, 0.0, float(f.shape[1]), float(f.shape[0]), 1.0) for f in frames
        ]
    return ImageEvidence(
        crops=crops,
        face_frames=kept,
        face_times=[times[i] for i in kept],
        boxes=kept_boxes,
        frames_analysed=len(frames),
        duration=duration,
        warnings=warnings,
        timings=watch.timings,
    )


def _group_faces_by_window(evidence: Evidence) -> list[list[int]]:
    """Pair each voice window with the faces seen during it (the nearest one if none was)."""
    all_faces = list(range(len(evidence.face_times)))
    if any(t is None for t in evidence.face_times):
        return [all_faces for _ in evidence.windows]
    times = np.asarray(evidence.face_times, dtype=np.float64)
    groups = []
    for start, end in evidence.window_times:
        inside = [i for i in all_faces if start <= times[i] < end]
        if not inside:
            inside = [int(np.argmin(np.abs(times - (start + end) / 2)))]
        groups.append(inside)
    return groups


#: Voice windows encoded per forward pass (about 16 s of audio): bounds the spectrograms and
#: activations in memory whatever the length of the recording. Measured with the default
#: Detector(): encoding 8 windows at once adds 65 MB to the process, 64 windows 425 MB.
ENCODE_BATCH_WINDOWS = 8


def window_batches(
    audio: AudioEvidence | Evidence, batch_windows: int = ENCODE_BATCH_WINDOWS
) -> Iterator[torch.Tensor]:
    """The voice windows as (B, WINDOW_SAMPLES) tensors of at most `batch_windows` rows."""
    for start in range(0, len(audio.windows), batch_windows):
        chunk = audio.windows[start : start + batch_windows]
        yield features.waves_to_windows(audio.wave, chunk)


def encode_in_batches(
    encode: Callable[[torch.Tensor], EncoderOutput],
    batches: Iterator[torch.Tensor],
    rows: int,
) -> EncoderOutput:
    """Run `encode` over window batches and join the outputs row-wise (as one call would give).

    Only one batch of windows, and its spectrograms and activations, is in memory at a time;
    the outputs are copied into tensors of `rows` rows allocated once, so joining them does
    not hold every part and the joined copy at the same time.
    """
    joined: EncoderOutput | None = None
    start = 0
    for batch in batches:
        part = encode(batch)
        if joined is None:
            joined = EncoderOutput(
                *(
                    part_field.new_empty((rows, *part_field.shape[1:]))
                    for part_field in _fields(part)
                )
            )
        end = start + len(part)
        for whole, piece in zip(_fields(joined), _fields(part)):
            whole[start:end] = piece
        start = end
    if joined is None or start != rows:
        raise ValueError(f"encode_in_batches expected {rows} rows, the batches gave {start}")
    return joined


def _fields(out: EncoderOutput) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return out.embedding, out.tokens, out.emotion_logits


#: Segments fused per call: the face view pooled per segment (tokens included) is built for this
#: many segments at a time, not for the hours of a long recording at once.
FUSE_BATCH_WINDOWS = 64


def fuse_in_batches(
    fuse: Callable[[EncoderOutput, EncoderOutput], ModelOutput],
    image_out: EncoderOutput,
    groups: Sequence[Sequence[int]],
    audio_out: EncoderOutput,
    batch_windows: int = FUSE_BATCH_WINDOWS,
) -> ModelOutput:
    """``fuse(image_out.pool(groups), audio_out)``, computed `batch_windows` segments at a time.

    Every fusion scores each segment on its own, so the rows are the same as in one call.
    """
    parts = []
    for start in range(0, len(groups), batch_windows):
        end = start + batch_windows
        audio_part = EncoderOutput(*(f[start:end] for f in _fields(audio_out)))
        parts.append(fuse(image_out.pool(groups[start:end]), audio_part))
    if len(parts) == 1:
        return parts[0]
    names = parts[0].modality_logits or {}
    weights = [p.fusion_weights for p in parts if p.fusion_weights is not None]
    return ModelOutput(
        fake_logit=torch.cat([p.fake_logit for p in parts]),
        face_emotion_logits=torch.cat([p.face_emotion_logits for p in parts]),
        voice_emotion_logits=torch.cat([p.voice_emotion_logits for p in parts]),
        consistency=torch.cat([p.consistency for p in parts]),
        modality_logits={k: torch.cat([p.modality_logits[k] for p in parts]) for k in names},
        fusion_weights=torch.cat(weights) if weights else None,
    )
