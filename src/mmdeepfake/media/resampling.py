"""Streaming sample-rate conversion with memory that does not depend on the rates.

libswresample (through PyAV) converts with a polyphase filter bank of a fixed number of phases,
interpolating between neighbouring phases when the ratio of the rates is not a small fraction;
its tables therefore stay a few megabytes at most, whatever the greatest common divisor of the
two rates (an exact polyphase design for 44 099 -> 16 000 Hz needs 16 000 phases of 44 099 taps).
Audio is fed in chunks as it is decoded, so the whole recording at its original rate never has
to be held at once.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from mmdeepfake.errors import UnsupportedMediaError
from mmdeepfake.media import limits

#: Samples converted per call when a whole array is resampled at once.
CHUNK_SAMPLES = 1 << 16


def check_rate(rate: float, name: str = "The audio") -> int:
    """The rate as an int, or UnsupportedMediaError outside [MIN_SAMPLE_RATE, MAX_SAMPLE_RATE]."""
    if not (limits.MIN_SAMPLE_RATE <= rate <= limits.MAX_SAMPLE_RATE) or rate != int(rate):
        raise UnsupportedMediaError(
            f"{name} is sampled at {rate} Hz; mmdeepfake reads audio sampled between "
            f"{limits.MIN_SAMPLE_RATE:,} and {limits.MAX_SAMPLE_RATE:,} Hz (below that there "
            "is no voice band left, above it the header is not believable). Re-export the "
            "recording at 16 kHz or 48 kHz."
        )
    return int(rate)


class StreamResampler:
    """Converts mono float32 audio from `orig_rate` to `new_rate`, chunk by chunk.

    `push` returns the output ready so far and `flush` the rest; together they give
    ``ceil(n * new_rate / orig_rate)`` samples for n input samples, the length an exact
    polyphase resampler gives.
    """

    def __init__(self, orig_rate: int, new_rate: int) -> None:
        self.orig_rate, self.new_rate = int(orig_rate), int(new_rate)
        self._fed = 0
        self._given = 0
        self._resampler = None
        if self.orig_rate != self.new_rate:
            import av

            self._resampler = av.AudioResampler(format="flt", layout="mono", rate=self.new_rate)

    def push(self, chunk: np.ndarray) -> np.ndarray:
        """Feed mono samples at `orig_rate`; return the samples at `new_rate` ready so far."""
        chunk = np.ascontiguousarray(chunk, dtype=np.float32).reshape(-1)
        if self._resampler is None or chunk.size == 0:
            self._fed += chunk.size
            return self._count(chunk) if self._resampler is None else chunk
        import av

        frame = av.AudioFrame.from_ndarray(chunk[None], format="flt", layout="mono")
        frame.sample_rate = self.orig_rate
        frame.pts = self._fed
        frame.time_base = Fraction(1, self.orig_rate)
        self._fed += chunk.size
        return self._count(self._collect(self._resampler.resample(frame)))

    def flush(self) -> np.ndarray:
        """The samples still held in the filter, trimmed or padded to the exact length."""
        if self._resampler is None:
            return np.zeros(0, np.float32)
        tail = self._collect(self._resampler.resample(None))
        expected = -(-self._fed * self.new_rate // self.orig_rate)
        missing = expected - self._given
        tail = tail[: max(missing, 0)]
        if tail.size < missing:
            tail = np.concatenate([tail, np.zeros(missing - tail.size, np.float32)])
        return self._count(tail)

    def _count(self, out: np.ndarray) -> np.ndarray:
        self._given += out.size
        return out

    @staticmethod
    def _collect(frames) -> np.ndarray:
        pieces = [frame.to_ndarray().reshape(-1) for frame in frames]
        if not pieces:
            return np.zeros(0, np.float32)
        return np.concatenate(pieces).astype(np.float32, copy=False)


def resample(wave: np.ndarray, orig_rate: int, new_rate: int) -> np.ndarray:
    """Resample a whole mono recording (float32) with `StreamResampler`."""
    if orig_rate <= 0 or new_rate <= 0:
        raise UnsupportedMediaError(f"Invalid sample rates {orig_rate} -> {new_rate}.")
    wave = np.ascontiguousarray(wave, dtype=np.float32).reshape(-1)
    if orig_rate == new_rate or wave.size == 0:
        return wave.copy()
    stream = StreamResampler(orig_rate, new_rate)
    pieces = [stream.push(wave[i : i + CHUNK_SAMPLES]) for i in range(0, wave.size, CHUNK_SAMPLES)]
    pieces.append(stream.flush())
    return np.concatenate(pieces)
