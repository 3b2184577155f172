"""The synthetic audio-visual emotion dataset (``mmdeepfake-synth``).

Each clip is a drawn face (:mod:`~mmdeepfake.data.synth_face`) and a synthetic voice
(:mod:`~mmdeepfake.data.synth_voice`), each showing an emotion, written in the dataset layout
of :mod:`~mmdeepfake.data.layout`::

    frames/{split}/{label}/c00012_00.png ... _{K-1}.png   K frames of the clip
    audio/{split}/{label}/c00012.wav                     16 kHz mono, 16-bit PCM
    videos/{split}/{label}/c00012.mp4                    with --videos: H.264 + AAC
    labels/emotions.csv                                  key,emotion per frame and audio file
    labels/clips.csv                                     one row per clip (see below)

Variants:

* ``consistency``: a real clip's face and voice show the same emotion; a fake clip's voice
  shows a different one. The face emotion is uniform over the 7 emotions, and the fake's voice
  is uniform over the other 6, so within each modality real and fake are identically
  distributed (same emotion marginals, same generators, same randomness): a detector that looks
  at one modality alone cannot beat chance, only the *agreement* separates them.
* ``mixed``: fakes are mismatched (as above), or carry per-modality manipulation artefacts
  (blend seam, blur or colour mismatch in the face; spectral holes, resampling or robotic pitch
  in the voice) with agreeing emotions, or both.

``labels/clips.csv`` has ``clip_id,split,label,face_emotion,voice_emotion,face_artefact,
voice_artefact`` for per-manipulation analysis. The face animation (head sway, talking) is
drawn independently of the voice, so a frame never leaks the voice's emotion. Everything is
deterministic by seed: the same arguments produce byte-identical files (PNG, PCM WAV and mp4
written with fixed encoder settings).
"""

from __future__ import annotations

import csv
import io
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from mmdeepfake.data.layout import CLIPS_CSV, EMOTIONS_CSV, LABEL_NAMES, SPLITS
from mmdeepfake.data.storage import Storage
from mmdeepfake.data.synth_face import EXPRESSIONS, FaceIdentity, FaceRenderer, add_noise, draw_face
from mmdeepfake.data.synth_voice import SAMPLE_RATE, VoiceIdentity, synth_voice
from mmdeepfake.errors import ConfigError
from mmdeepfake.labels import EMOTION_INDEX, EMOTIONS, NUM_EMOTIONS

__all__ = [
    "FACE_ARTEFACTS",
    "VARIANTS",
    "VOICE_ARTEFACTS",
    "ClipSpec",
    "SynthClip",
    "SynthSummary",
    "draw_face",
    "encode_mp4",
    "encode_png",
    "encode_wav",
    "generate_dataset",
    "make_clip",
    "plan_clips",
    "render_clip",
    "synth_voice",
]

log = logging.getLogger(__name__)

VARIANTS = ("consistency", "mixed")
FACE_ARTEFACTS = ("seam", "blur", "colour")
VOICE_ARTEFACTS = ("spectral_holes", "resampled", "robotic")
VIDEO_FPS = 15

# Random-number streams of a clip: separate, so that drawing a fake's artefact never shifts
# the face or voice that the same clip would get as a real one.
_PLAN, _FACE, _VOICE, _ARTEFACT = 0, 1, 2, 3


@dataclass(frozen=True)
class ClipSpec:
    """What one synthetic clip shows."""

    index: int
    clip_id: str
    split: str
    label: int  # 0 real, 1 fake
    face_emotion: int
    voice_emotion: int
    face_artefact: str = ""
    voice_artefact: str = ""

    @property
    def label_name(self) -> str:
        return LABEL_NAMES[self.label]


@dataclass
class SynthClip:
    """A rendered clip: face frames (K, H, W, 3) uint8, the voice, and optional video frames."""

    spec: ClipSpec
    frames: np.ndarray
    wave: np.ndarray
    video_frames: np.ndarray | None = None


@dataclass
class SynthSummary:
    """Counts of what :func:`generate_dataset` wrote."""

    location: str
    clips: dict[str, dict[str, int]] = field(default_factory=dict)  # split -> label -> clips
    files: int = 0

    def describe(self) -> str:
        parts = [
            f"{split}: {c.get('real', 0)} real + {c.get('fake', 0)} fake"
            for split, c in self.clips.items()
        ]
        return f"wrote {self.files} files to {self.location} ({'; '.join(parts)})"


def _emotion_index(emotion: str | int) -> int:
    if isinstance(emotion, (int, np.integer)):
        if not 0 <= int(emotion) < NUM_EMOTIONS:
            raise ConfigError(f"emotion index {emotion} is out of range 0-{NUM_EMOTIONS - 1}")
        return int(emotion)
    index = EMOTION_INDEX.get(str(emotion).lower())
    if index is None:
        raise ConfigError(f"unknown emotion {emotion!r}; use one of {', '.join(EMOTIONS)}")
    return index


def split_counts(clips: int, fractions: Sequence[float]) -> dict[str, int]:
    """How many clips each split gets; every split with a positive share gets at least 2."""
    if (
        len(fractions) != len(SPLITS)
        or any(f < 0 for f in fractions)
        or not math.isclose(sum(fractions), 1.0, abs_tol=1e-6)
    ):
        raise ConfigError(
            f"--splits must be three non-negative fractions for {','.join(SPLITS)} that sum to "
            f"1 (got {','.join(str(f) for f in fractions)}); e.g. --splits 0.7,0.15,0.15"
        )
    counts = {split: round(clips * f) for split, f in zip(SPLITS[1:], fractions[1:])}
    counts = {SPLITS[0]: clips - sum(counts.values()), **counts}
    too_small = [s for s, f in zip(SPLITS, fractions) if f > 0 and counts[s] < 2]
    if too_small or counts[SPLITS[0]] < 0:
        raise ConfigError(
            f"--clips {clips} is too small for --splits {','.join(str(f) for f in fractions)}: "
            f"split(s) {', '.join(too_small)} would get fewer than 2 clips (one real, one "
            "fake); use more clips or give those splits a larger share"
        )
    return counts


def plan_clips(
    clips: int, seed: int, variant: str = "consistency", splits: Sequence[float] = (0.7, 0.15, 0.15)
) -> list[ClipSpec]:
    """Splits, labels, emotions and artefacts of every clip (balanced real/fake per split)."""
    if variant not in VARIANTS:
        raise ConfigError(f"unknown variant {variant!r}; use one of {', '.join(VARIANTS)}")
    if clips < 1:
        raise ConfigError(f"--clips must be at least 1 (got {clips})")
    counts = split_counts(clips, splits)
    order = np.random.default_rng([seed, 2**20])
    specs = []
    index = 0
    for split in SPLITS:
        labels = order.permutation(np.arange(counts[split]) % 2)
        for label in labels:
            specs.append(_plan_one(index, split, int(label), seed, variant))
            index += 1
    return specs


def _plan_one(index: int, split: str, label: int, seed: int, variant: str) -> ClipSpec:
    rng = np.random.default_rng([seed, index, _PLAN])
    face = int(rng.integers(NUM_EMOTIONS))
    other = int((face + 1 + rng.integers(NUM_EMOTIONS - 1)) % NUM_EMOTIONS)
    face_artefact = voice_artefact = ""
    mismatch = label == 1
    if label == 1 and variant == "mixed":
        kind = np.random.default_rng([seed, index, _ARTEFACT]).choice(
            ["mismatch", "face", "voice", "mismatch+face", "mismatch+voice"],
            p=[0.4, 0.2, 0.2, 0.1, 0.1],
        )
        mismatch = kind.startswith("mismatch")
        pick = np.random.default_rng([seed, index, _ARTEFACT, 1])
        if "face" in kind:
            face_artefact = str(pick.choice(FACE_ARTEFACTS))
        if "voice" in kind:
            voice_artefact = str(pick.choice(VOICE_ARTEFACTS))
    return ClipSpec(
        index=index,
        clip_id=f"c{index:05d}",
        split=split,
        label=label,
        face_emotion=face,
        voice_emotion=other if mismatch else face,
        face_artefact=face_artefact,
        voice_artefact=voice_artefact,
    )


def render_clip(
    spec: ClipSpec,
    seed: int,
    *,
    frames_per_clip: int = 4,
    video: bool = False,
    seconds: float | None = None,
    size: int = 224,
) -> SynthClip:
    """Draw the frames and synthesise the voice of one planned clip."""
    voice_rng = np.random.default_rng([seed, spec.index, _VOICE])
    speaker = VoiceIdentity.sample(voice_rng)
    wave = synth_voice(
        spec.voice_emotion,
        voice_rng,
        seconds=seconds,
        speaker=speaker,
        robotic=spec.voice_artefact == "robotic",
    )
    duration = len(wave) / SAMPLE_RATE
    face_rng = np.random.default_rng([seed, spec.index, _FACE])
    renderer = FaceRenderer(FaceIdentity.sample(face_rng), size)
    noise = float(face_rng.uniform(2, 6))
    expression = EXPRESSIONS[EMOTIONS[spec.face_emotion]]
    # Frames at evenly spread times over the clip (the times a video sampler would pick).
    times = (np.arange(frames_per_clip) + 0.5) * duration / frames_per_clip
    artefact_rng = np.random.default_rng([seed, spec.index, _ARTEFACT, 2])
    face_fx = _face_artefact_params(spec.face_artefact, artefact_rng)

    def frame_at(t: float) -> np.ndarray:
        image = renderer.render(expression, t)
        if face_fx:
            image = _apply_face_artefact(image, renderer.face_geometry(), face_fx)
        return add_noise(image, face_rng, noise)

    frames = np.stack([frame_at(t) for t in times])
    video_frames = None
    if video:
        count = max(round(duration * VIDEO_FPS), 1)
        video_frames = np.stack([frame_at(i / VIDEO_FPS) for i in range(count)])
    if spec.voice_artefact and spec.voice_artefact != "robotic":
        wave = _apply_voice_artefact(wave, spec.voice_artefact, artefact_rng)
    return SynthClip(spec=spec, frames=frames, wave=wave, video_frames=video_frames)


# --- manipulation artefacts (mixed variant) ----------------------------------------------------


def _face_artefact_params(kind: str, rng: np.random.Generator) -> dict[str, float] | None:
    if not kind:
        return None
    return {
        "kind": FACE_ARTEFACTS.index(kind),
        "tint_r": rng.uniform(-28, 28),
        "tint_g": rng.uniform(-20, 20),
        "tint_b": rng.uniform(-28, 28),
        "blur": rng.uniform(1.5, 3.0),
        "scale": rng.uniform(0.78, 0.9),
    }


def _apply_face_artefact(
    image: np.ndarray, geometry: tuple[float, ...], fx: dict[str, float]
) -> np.ndarray:
    """Imitate a face swap: the inner face region pasted with a seam, blur or colour shift."""
    cx, cy, rx, ry, angle = geometry
    h, w = image.shape[:2]
    mask = Image.new("L", (w, h), 0)
    a, b = rx * fx["scale"], ry * fx["scale"] * 0.8
    box = [cx - a, cy - b + 0.1 * ry, cx + a, cy + b + 0.1 * ry]
    ImageDraw.Draw(mask).ellipse(box, fill=255)
    mask = mask.rotate(-angle, center=(cx, cy), resample=Image.Resampling.BILINEAR)
    kind = FACE_ARTEFACTS[int(fx["kind"])]
    pasted = Image.fromarray(image)
    if kind == "blur":
        pasted = pasted.filter(ImageFilter.GaussianBlur(fx["blur"]))
    shift = np.array([fx["tint_r"], fx["tint_g"], fx["tint_b"]])
    inner = np.asarray(pasted, dtype=float)
    if kind in ("colour", "seam"):
        inner = inner + (shift if kind == "colour" else 0.5 * shift)
    weight = np.asarray(mask, dtype=float)[..., None] / 255.0
    out = image * (1 - weight) + inner * weight
    if kind == "seam":  # a visible blending boundary
        edge = np.asarray(mask.filter(ImageFilter.FIND_EDGES), dtype=float)[..., None] / 255.0
        out = out * (1 - 0.35 * edge) + 0.35 * edge * (out + 25)
    return np.clip(out, 0, 255).astype(np.uint8)


def _apply_voice_artefact(wave: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """Imitate a voice conversion / TTS: notched spectrum or a low-rate, aliased resampling."""
    if kind == "spectral_holes":
        spectrum = np.fft.rfft(wave)
        freqs = np.fft.rfftfreq(len(wave), 1 / SAMPLE_RATE)
        for _ in range(int(rng.integers(2, 5))):
            centre, width = rng.uniform(400, 5000), rng.uniform(150, 500)
            spectrum[np.abs(freqs - centre) < width / 2] = 0
        out = np.fft.irfft(spectrum, n=len(wave))
    else:  # resampled: decimate without an anti-alias filter, then interpolate back
        factor = int(rng.integers(2, 4))
        low = wave[::factor]
        out = np.interp(np.arange(len(wave)) / factor, np.arange(len(low)), low)
    return np.clip(out, -0.99, 0.99).astype(np.float32)


# --- encoding ----------------------------------------------------------------------------------


def encode_png(frame: np.ndarray) -> bytes:
    """PNG bytes of an RGB frame (no metadata, so the bytes depend on the pixels only)."""
    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format="PNG", optimize=False, compress_level=6)
    return buffer.getvalue()


def encode_wav(wave: np.ndarray, sample_rate: int = SAMPLE_RATE) -> bytes:
    """16-bit PCM WAV bytes of a mono float waveform."""
    import soundfile

    buffer = io.BytesIO()
    soundfile.write(buffer, wave, sample_rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def encode_mp4(
    frames: np.ndarray, wave: np.ndarray, *, fps: int = VIDEO_FPS, sample_rate: int = SAMPLE_RATE
) -> bytes:
    """An mp4 (H.264 video, AAC audio) of RGB frames and a mono voice, built in memory.

    Encoders run single-threaded with fixed settings so that the bytes are reproducible.
    """
    import av

    buffer = io.BytesIO()
    height, width = frames.shape[1:3]
    with av.open(buffer, "w", format="mp4") as out:
        video = out.add_stream("libx264", rate=fps)
        video.width, video.height = width - width % 2, height - height % 2
        video.pix_fmt = "yuv420p"
        video.codec_context.thread_count = 1
        video.codec_context.options = {"preset": "fast", "crf": "20", "threads": "1"}
        audio = out.add_stream("aac", rate=sample_rate)
        audio.layout = "mono"
        audio.codec_context.thread_count = 1
        for frame in frames:
            image = av.VideoFrame.from_ndarray(
                np.ascontiguousarray(frame[: video.height, : video.width]), format="rgb24"
            )
            out.mux(video.encode(image))
        out.mux(video.encode())
        chunk = audio.codec_context.frame_size or 1024
        samples = wave.astype(np.float32)[None, :]
        for start in range(0, samples.shape[1], chunk):
            block = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(samples[:, start : start + chunk]),
                format="fltp",
                layout="mono",
            )
            block.sample_rate = sample_rate
            block.pts = start
            block.time_base = Fraction(1, sample_rate)
            out.mux(audio.encode(block))
        out.mux(audio.encode())
    return buffer.getvalue()


# --- the dataset and single clips --------------------------------------------------------------


def generate_dataset(
    storage: Storage,
    clips: int,
    seed: int = 0,
    variant: str = "consistency",
    videos: bool = False,
    *,
    frames_per_clip: int = 4,
    splits: Sequence[float] = (0.7, 0.15, 0.15),
    seconds: float | None = None,
    progress: bool = False,
) -> SynthSummary:
    """Write a synthetic dataset of ``clips`` clips at the root of ``storage``.

    ``seconds`` fixes every clip's duration (default: random 2-3 s per clip).
    """
    if frames_per_clip < 1:
        raise ConfigError(f"--frames-per-clip must be at least 1 (got {frames_per_clip})")
    specs = plan_clips(clips, seed, variant, splits)
    storage.ensure_bucket()
    summary = SynthSummary(location=storage.uri())
    emotion_rows: list[tuple[str, str]] = []
    from tqdm import tqdm

    # disable=None: a bar on a terminal only, never frames in a redirected log
    for spec in tqdm(specs, desc="synthesising", unit="clip", disable=None if progress else True):
        clip = render_clip(
            spec, seed, frames_per_clip=frames_per_clip, video=videos, seconds=seconds
        )
        folder = f"{spec.split}/{spec.label_name}"
        for k, frame in enumerate(clip.frames):
            key = f"frames/{folder}/{spec.clip_id}_{k:02d}.png"
            storage.write_bytes(key, encode_png(frame))
            emotion_rows.append((key, EMOTIONS[spec.face_emotion]))
        key = f"audio/{folder}/{spec.clip_id}.wav"
        storage.write_bytes(key, encode_wav(clip.wave))
        emotion_rows.append((key, EMOTIONS[spec.voice_emotion]))
        summary.files += len(clip.frames) + 1
        if clip.video_frames is not None:
            storage.write_bytes(
                f"videos/{folder}/{spec.clip_id}.mp4", encode_mp4(clip.video_frames, clip.wave)
            )
            summary.files += 1
        counts = summary.clips.setdefault(spec.split, {"real": 0, "fake": 0})
        counts[spec.label_name] += 1
    storage.write_text(EMOTIONS_CSV, _csv(("key", "emotion"), emotion_rows))
    storage.write_text(
        CLIPS_CSV,
        _csv(
            (
                "clip_id",
                "split",
                "label",
                "face_emotion",
                "voice_emotion",
                "face_artefact",
                "voice_artefact",
            ),
            [
                (
                    s.clip_id,
                    s.split,
                    s.label_name,
                    EMOTIONS[s.face_emotion],
                    EMOTIONS[s.voice_emotion],
                    s.face_artefact,
                    s.voice_artefact,
                )
                for s in specs
            ],
        ),
    )
    summary.files += 2
    log.info(summary.describe())
    return summary


def _csv(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def make_clip(
    path: str | os.PathLike[str],
    emotion_face: str | int,
    emotion_voice: str | int,
    seed: int = 0,
    *,
    seconds: float = 2.5,
    fps: int = VIDEO_FPS,
    size: int = 224,
) -> Path:
    """Write one mp4 (H.264 + AAC) of a synthetic face and voice with the given emotions.

    For demos and tests: ``make_clip("fake.mp4", "happy", "angry", seed=3)`` is a clip whose
    face and voice disagree.
    """
    face, voice = _emotion_index(emotion_face), _emotion_index(emotion_voice)
    if seconds <= 0 or fps < 1:
        raise ConfigError("make_clip needs seconds > 0 and fps >= 1")
    voice_rng = np.random.default_rng([seed, _VOICE])
    wave = synth_voice(voice, voice_rng, seconds=seconds)
    face_rng = np.random.default_rng([seed, _FACE])
    renderer = FaceRenderer(FaceIdentity.sample(face_rng), size)
    expression = EXPRESSIONS[EMOTIONS[face]]
    count = max(round(seconds * fps), 1)
    frames = np.stack(
        [add_noise(renderer.render(expression, i / fps), face_rng, 3.0) for i in range(count)]
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode_mp4(frames, wave, fps=fps))
    return path
