"""Turn user media into the evidence the model scores: face crops, voice windows, a timeline.

A video gives both modalities at once; a face image (or several) plus a voice recording gives
them separately. Each half is gathered on its own, the face crops as a :class:`Sight` and the
voice as a :class:`Voice` (independent work, so a caller can run the two concurrently), and
:func:`combine` joins them into an :class:`Evidence`: the face crops found, the voice cut into
fixed windows, and for every window the faces that belong to it. Segments follow the
voice windows because a voice window is the smallest unit the audio encoder scores; each segment
is paired with the faces seen during it (for a video) or with every face (for still images).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from mmdeepfake.errors import NoFaceFoundError
from mmdeepfake.media import decode, faces, features


@dataclass
class Sight:
    """The visual half: the main face of each analysed frame or image."""

    crops: np.ndarray  # (F, 224, 224, 3) uint8 face crops, one per frame with a face
    face_frames: list[int]  # index of the source frame of each crop
    face_times: list[float | None]  # time of each crop in the clip, None for still images
    boxes: list[faces.FaceBox]  # detector boxes of each crop (whole image when not detected)
    frames_analysed: int
    duration: float | None  # of the video; None for still images
    warnings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)


@dataclass
class Voice:
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
    voice = voice_from_video(source)
    sight = sight_from_video(
        source, num_frames=num_frames, detect_faces=detect_faces, detector=detector, margin=margin
    )
    return combine(sight, voice)


def from_pair(
    images: Sequence[decode.MediaSource],
    audio: decode.MediaSource,
    *,
    detect_faces: bool = True,
    detector: faces.FaceDetector | None = None,
    margin: float = faces.FACE_MARGIN,
) -> Evidence:
    """Load still face images and a separate voice recording."""
    voice = voice_from_recording(audio)
    sight = sight_from_images(images, detect_faces=detect_faces, detector=detector, margin=margin)
    return combine(sight, voice)


def sight_from_video(
    source: decode.MediaSource,
    *,
    num_frames: int,
    detect_faces: bool = True,
    detector: faces.FaceDetector | None = None,
    margin: float = faces.FACE_MARGIN,
) -> Sight:
    """Sample `num_frames` frames of a video (not its audio) and find the face in each.

    ``margin`` frames the crops (see ``faces.crop_faces``); pass the image encoder's
    ``face_margin``.
    """
    watch = _Stopwatch()
    clip = watch.run("decode", decode.load_video, source, num_frames=num_frames, decode_audio=False)
    times = [float(t) for t in clip.frame_times]
    return _find_faces(
        list(clip.frames), times, clip.duration, detect_faces, detector, watch, margin
    )


def sight_from_images(
    images: Sequence[decode.MediaSource],
    *,
    detect_faces: bool = True,
    detector: faces.FaceDetector | None = None,
    margin: float = faces.FACE_MARGIN,
) -> Sight:
    """Load still face images and find the face in each (crops framed by ``margin``)."""
    watch = _Stopwatch()
    frames = watch.run("decode", lambda: [decode.load_image(image) for image in images])
    return _find_faces(frames, [None] * len(frames), None, detect_faces, detector, watch, margin)


def voice_from_video(source: decode.MediaSource) -> Voice:
    """The audio track of a video, cut into voice windows."""
    watch = _Stopwatch()
    wave = watch.run("audio_decode", decode.load_video_audio, source, sample_rate=features.SAMPLE_RATE)
    return _cut_voice(wave, watch)


def voice_from_recording(audio: decode.MediaSource) -> Voice:
    """A voice recording (file, bytes or 16 kHz array), cut into voice windows."""
    watch = _Stopwatch()
    wave = watch.run("audio_decode", decode.load_audio, audio, sample_rate=features.SAMPLE_RATE)
    return _cut_voice(wave, watch)


def combine(sight: Sight, voice: Voice) -> Evidence:
    """Join the two halves, pairing every voice window with the faces seen during it."""
    duration = sight.duration if sight.duration is not None else len(voice.wave) / features.SAMPLE_RATE
    evidence = Evidence(
        crops=sight.crops,
        face_frames=sight.face_frames,
        face_times=sight.face_times,
        boxes=sight.boxes,
        wave=voice.wave,
        windows=voice.windows,
        groups=[],
        frames_analysed=sight.frames_analysed,
        duration=duration,
        warnings=sight.warnings + voice.warnings,
        timings={**sight.timings, **voice.timings},
    )
    evidence.groups = _group_faces_by_window(evidence)
    return evidence


def _cut_voice(wave: np.ndarray, watch: _Stopwatch) -> Voice:
    warnings: list[str] = []
    if len(wave) < features.WINDOW_SAMPLES:
        warnings.append(
            f"the voice lasts {len(wave) / features.SAMPLE_RATE:.1f} s, shorter than one "
            f"{features.WINDOW_SECONDS:.1f} s analysis window; it was padded"
        )
    return Voice(wave=wave, windows=features.audio_windows(wave), warnings=warnings, timings=watch.timings)


def _find_faces(
    frames: list[np.ndarray],
    times: list[float | None],
    duration: float | None,
    detect_faces: bool,
    detector: faces.FaceDetector | None,
    watch: _Stopwatch,
    margin: float = faces.FACE_MARGIN,
) -> Sight:
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
                "a face is clearly visible, or pass detect_faces=False if the images are already "
                "cropped to a face."
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
        crops = watch.run("face_detection", lambda: np.stack([faces.center_crop_face(f) for f in frames]))
        kept_boxes = [
            faces.FaceBox(0.0, 0.0, float(f.shape[1]), float(f.shape[0]), 1.0) for f in frames
        ]
    return Sight(
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
