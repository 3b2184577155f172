"""Audio decoding that streams: mono float32 at the target rate, in bounded memory.

Decoders hand over blocks of samples as they read them; an :class:`AudioSink` checks each
block (finite, believable amplitude), mixes it down to mono, resamples it and appends it to the
result, and stops with a typed error as soon as the recording passes the duration cap. The
duration announced in the header is checked before the first block is decoded, so a few
megabytes of FLAC silence claiming four hours are refused without decoding them.

Multichannel audio from PyAV is converted to *packed* float at its own layout and averaged
here: PyAV's planar conversion reads past the end of its plane array for more than eight
channels (7.1 AAC segfaults), and averaging keeps the level of identical channels, where
libswresample's own mono downmix makes a stereo file 3 dB louder than the same voice in mono.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import BinaryIO

import numpy as np

from mmdeepfake.errors import CorruptMediaError, MediaTooLargeError, NoAudioTrackError
from mmdeepfake.media import limits
from mmdeepfake.media.resampling import StreamResampler, check_rate

#: Frames read from soundfile per block (about 1.5 s at 44.1 kHz).
BLOCK_FRAMES = 1 << 16
#: A decode that ends before this share of the duration the header announces gets a warning.
TRUNCATION_SHARE = 0.9


@dataclass
class DecodedAudio:
    """A mono recording at `sample_rate`, and notes on what was wrong with the file."""

    wave: np.ndarray  # (S,) float32
    sample_rate: int
    warnings: list[str] = field(default_factory=list)


def too_long_message(name: str, seconds: float | None, max_seconds: float) -> str:
    length = f" ({seconds / 60:.1f} minutes)" if seconds is not None else ""
    return (
        f"{name} is longer than {max_seconds / 60:.0f} minutes{length}. Cut it into shorter "
        "pieces, or raise max_seconds (mmdeepfake.media.limits.MAX_AUDIO_SECONDS) if you need it "
        "whole."
    )


class AudioSink:
    """Collects mono blocks at `source_rate` into float32 at `sample_rate`, under the caps."""

    def __init__(
        self,
        name: str,
        source_rate: int,
        sample_rate: int,
        max_seconds: float,
        expected_seconds: float | None = None,
    ) -> None:
        self.name = name
        self.source_rate = check_rate(source_rate, name)
        self.sample_rate = sample_rate
        self.max_seconds = max_seconds
        self.max_samples = int(max_seconds * self.source_rate)
        self.seen = 0  # samples at source_rate
        self._resampler = StreamResampler(self.source_rate, sample_rate)
        guess = expected_seconds if expected_seconds and expected_seconds > 0 else 1.0
        self._buffer = np.empty(int(min(guess, max_seconds) * sample_rate) + 1024, np.float32)
        self._size = 0

    def push(self, block: np.ndarray) -> None:
        """Add (n,) mono or (n, channels) samples (float or int) at the source rate."""
        mono = mix_down(block, self.name)
        self.seen += mono.size
        if self.seen > self.max_samples:
            raise MediaTooLargeError(too_long_message(self.name, None, self.max_seconds))
        self._append(self._resampler.push(mono))

    def finish(self) -> np.ndarray:
        """The whole recording at `sample_rate` (the buffer trimmed to its length)."""
        self._append(self._resampler.flush())
        self._buffer.resize(self._size, refcheck=False)  # shrinks in place, without a copy
        wave, self._buffer = self._buffer, np.empty(0, np.float32)
        return wave

    def _append(self, samples: np.ndarray) -> None:
        end = self._size + samples.size
        if end > self._buffer.size:
            grown = np.empty(max(end, int(self._buffer.size * 1.5)), np.float32)
            grown[: self._size] = self._buffer[: self._size]
            self._buffer = grown
        self._buffer[self._size : end] = samples
        self._size = end


def mix_down(block: np.ndarray, name: str) -> np.ndarray:
    """(n,) or (n, channels) samples -> (n,) float32 mono, refusing non-finite or absurd values.

    Integer samples are scaled from their full range; channels are averaged.
    """
    block = np.asarray(block)
    if np.issubdtype(block.dtype, np.integer):
        info = np.iinfo(block.dtype)
        block = (block.astype(np.float32) - (info.max + info.min + 1) / 2) / (
            (info.max + 1 - info.min) / 2
        )
    else:
        block = block.astype(np.float32, copy=False)
        check_finite(block, name)
    if block.ndim == 2:
        block = block.mean(axis=1, dtype=np.float32)
    return np.ascontiguousarray(block, dtype=np.float32)


def check_finite(samples: np.ndarray, name: str) -> None:
    """CorruptMediaError for NaN, infinite or implausibly large float samples."""
    if samples.size == 0:
        return
    peak = float(np.max(np.abs(samples)))
    if not math.isfinite(peak):
        raise CorruptMediaError(
            f"{name} contains NaN or infinite samples, so no score can be computed from it. "
            "Re-export the recording; if it came from your own code, check it for divisions by "
            "zero."
        )
    if peak > limits.MAX_AMPLITUDE:
        raise CorruptMediaError(
            f"{name} has samples of amplitude {peak:.3g}, where full scale is 1.0: it is damaged "
            "or was never normalised. Scale it to [-1, 1] (divide by its peak) and try again."
        )


def decode_with_soundfile(
    source: str | os.PathLike | BinaryIO, name: str, sample_rate: int, max_seconds: float
) -> DecodedAudio | None:
    """Decode with libsndfile, block by block; None if libsndfile cannot open the file."""
    import soundfile as sf

    try:
        handle = sf.SoundFile(source)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError):
        return None  # not a libsndfile format (m4a, opus in mp4...): PyAV decides
    with handle:
        announced = handle.frames / handle.samplerate if handle.samplerate > 0 else None
        if announced is not None and announced > max_seconds:
            raise MediaTooLargeError(too_long_message(name, announced, max_seconds))
        sink = AudioSink(name, handle.samplerate, sample_rate, max_seconds, announced)
        while True:
            try:
                block = handle.read(BLOCK_FRAMES, dtype="float32", always_2d=True)
            except (sf.LibsndfileError, RuntimeError):
                return None  # damaged mid-way (garbage in an mp3): PyAV resyncs past it
            if not len(block):
                break
            sink.push(block)
    return DecodedAudio(sink.finish(), sample_rate, truncation_notes(sink, announced))


def decode_with_pyav(container, name: str, sample_rate: int, max_seconds: float) -> DecodedAudio:
    """Decode the first audio stream of an open PyAV container."""
    import av

    if not container.streams.audio:
        raise NoAudioTrackError(
            f"{name} has no audio track, so there is no voice to compare with the face. Pass a "
            "clip with sound, or give the voice separately (audio=...)."
        )
    stream = container.streams.audio[0]
    rate = check_rate(stream.codec_context.sample_rate or stream.rate or 0, name)
    announced = _announced_seconds(container, stream)
    if announced is not None and announced > max_seconds:
        raise MediaTooLargeError(too_long_message(name, announced, max_seconds))
    sink = AudioSink(name, rate, sample_rate, max_seconds, announced)
    packed = av.AudioResampler(format="flt", rate=rate)  # packed float at the stream's layout
    damaged = 0
    for packet in container.demux(stream):
        try:
            frames = packet.decode()
        except av.error.InvalidDataError:
            damaged += 1  # one damaged packet: keep the rest of the track
            continue
        for frame in frames:
            try:
                converted = packed.resample(frame)
            except ValueError:  # the layout or format changed mid-stream
                damaged += 1
                continue
            for out in converted:
                channels = out.layout.nb_channels
                sink.push(out.to_ndarray().reshape(-1, channels))
    notes = truncation_notes(sink, announced)
    if damaged:
        notes.append(
            f"{damaged} damaged audio packet{'s' if damaged > 1 else ''} in {name} could not be "
            "decoded and were skipped; the voice has gaps there"
        )
    return DecodedAudio(sink.finish(), sample_rate, notes)


def _announced_seconds(container, stream) -> float | None:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / 1e6
    return None


def truncation_notes(sink: AudioSink, announced: float | None) -> list[str]:
    """A note when decoding ended well before the duration the header announces."""
    decoded = sink.seen / sink.source_rate
    if announced is None or announced < 1.0 or decoded >= TRUNCATION_SHARE * announced:
        return []
    note = (
        f"only {decoded:.1f} s of the {announced:.1f} s that {sink.name} announces could be "
        "decoded: the file is damaged after that point, and the rest was not analysed"
    )
    return [note]
