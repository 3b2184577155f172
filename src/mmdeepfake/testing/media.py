"""Media for tests and benchmarks, generated on the fly (no downloads, no checked-in binaries).

mmdeepfake's test suite, its benchmark scripts and tests of code built on the library import
these helpers, so they stay small and deterministic: `write_video` muxes frames (and optionally
a waveform) with PyAV, `write_audio` writes a waveform with soundfile (PyAV for formats
libsndfile lacks), `face_photo` and `astronaut` are real photographs shipped with matplotlib
and scikit-image, and `face_video` puts such a photograph on a moving background so a face is
visible in every frame. The second half of the module builds hostile inputs: small files that
once crashed, hung or exhausted the memory of a decoder.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import soundfile as sf

_CONTAINER_CODECS = {
    # suffix: (container format, video codec, audio codec)
    ".mp4": ("mp4", "libx264", "aac"),
    ".mov": ("mov", "libx264", "aac"),
    ".mkv": ("matroska", "libx264", "aac"),
    ".webm": ("webm", "libvpx-vp9", "libopus"),
}


def tone(
    freq: float = 440.0,
    seconds: float = 1.0,
    sample_rate: int = 16000,
    amplitude: float = 0.5,
    channels: int = 1,
) -> np.ndarray:
    """A sine wave, float32, shape (S,) for mono or (S, channels)."""
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    wave = (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    if channels == 1:
        return wave
    return np.stack([wave] * channels, axis=1)


def voice_like(seconds: float = 1.0, sample_rate: int = 16000, seed: int = 0) -> np.ndarray:
    """A harmonic, amplitude-modulated signal with a gliding pitch: speech-like enough for tests."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    f0 = 150 + 30 * np.sin(2 * np.pi * 1.5 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate
    wave = sum(np.sin(k * phase) / k for k in range(1, 8))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 3 * t) ** 2
    wave = 0.3 * envelope * wave / np.abs(wave).max() + 0.005 * rng.standard_normal(t.size)
    return wave.astype(np.float32)


def write_audio(path: str | os.PathLike, wave: np.ndarray, sample_rate: int = 16000) -> Path:
    """Write a float waveform ((S,) or (S, C)) to wav/flac/ogg/mp3 (soundfile) or m4a (PyAV)."""
    path = Path(path)
    suffix = path.suffix.lower()
    wave = np.asarray(wave, dtype=np.float32)
    if suffix in (".wav", ".flac", ".ogg", ".mp3"):
        subtype = {".ogg": "VORBIS", ".mp3": "MPEG_LAYER_III"}.get(suffix)
        sf.write(str(path), wave, sample_rate, subtype=subtype)
        return path
    if suffix in (".m4a", ".aac"):
        with av.open(str(path), "w", format="mp4" if suffix == ".m4a" else "adts") as out:
            stream = out.add_stream("aac", rate=sample_rate)
            stream.layout = _LAYOUTS[1 if wave.ndim == 1 else wave.shape[1]]
            _mux_audio(out, stream, wave, sample_rate)
        return path
    raise ValueError(f"write_audio does not know the suffix {suffix!r}")


def write_video(
    path: str | os.PathLike,
    frames: np.ndarray,
    fps: int = 25,
    audio: np.ndarray | None = None,
    sample_rate: int = 16000,
    codec: str | None = None,
    gop: int | None = None,
    rotation: int = 0,
) -> Path:
    """Mux uint8 RGB frames (N,H,W,3) and an optional waveform into mp4/mov/webm/mkv.

    The container follows the suffix; H.264 + AAC except for webm (VP9 + Opus). `gop` sets the
    keyframe interval in frames (default: the encoder's own, 250 frames for libx264). The
    waveform is (S,) mono or (S, C) with C channels (2, 6 or 8: stereo, 5.1, 7.1). `rotation`
    stores a display matrix turning the frames that many degrees counter-clockwise on playback.
    """
    path = Path(path)
    container_format, default_codec, audio_codec = _CONTAINER_CODECS[path.suffix.lower()]
    frames = np.asarray(frames, dtype=np.uint8)
    height, width = frames.shape[1:3]
    with av.open(str(path), "w", format=container_format) as out:
        vstream = out.add_stream(codec or default_codec, rate=fps)
        vstream.width, vstream.height = width - width % 2, height - height % 2
        vstream.pix_fmt = "yuv420p"
        if gop is not None:
            vstream.codec_context.gop_size = gop
        if rotation:
            vstream.set_display_rotation(rotation)
        if vstream.codec_context.name == "libvpx-vp9":
            vstream.codec_context.options = {"deadline": "realtime", "cpu-used": "8"}
        astream = None
        if audio is not None:
            astream = out.add_stream(
                audio_codec, rate=48000 if audio_codec == "libopus" else sample_rate
            )
            astream.layout = _LAYOUTS[1 if np.ndim(audio) == 1 else np.shape(audio)[1]]
        for frame in frames:
            vframe = av.VideoFrame.from_ndarray(
                frame[: vstream.height, : vstream.width], format="rgb24"
            )
            for packet in vstream.encode(vframe):
                out.mux(packet)
        for packet in vstream.encode():
            out.mux(packet)
        if astream is not None:
            wave = np.asarray(audio, dtype=np.float32)
            if astream.rate != sample_rate:
                wave = _linear_resample(wave, sample_rate, astream.rate)
            _mux_audio(out, astream, wave, astream.rate)
    return path


def _linear_resample(wave: np.ndarray, src: int, dst: int) -> np.ndarray:
    """Crude resampling for writing test files only (the library has its own resampler)."""
    n_out = round(len(wave) * dst / src)
    return np.interp(np.arange(n_out) * src / dst, np.arange(len(wave)), wave).astype(np.float32)


_LAYOUTS = {1: "mono", 2: "stereo", 6: "5.1", 8: "7.1"}


def _mux_audio(
    out: av.container.OutputContainer,
    stream: av.audio.stream.AudioStream,
    wave: np.ndarray,
    sample_rate: int,
) -> None:
    """Encode a float waveform in codec-sized chunks and mux it.

    Frames are built packed (interleaved): PyAV's planar frames break above eight channels.
    """
    channels = 1 if wave.ndim == 1 else wave.shape[1]
    packed = wave.reshape(-1, channels).astype(np.float32)
    chunk = stream.codec_context.frame_size or 1024
    for start in range(0, packed.shape[0], chunk):
        block = np.ascontiguousarray(packed[start : start + chunk]).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(block, format="flt", layout=_LAYOUTS[channels])
        frame.sample_rate = sample_rate
        frame.pts = start
        frame.time_base = Fraction(1, sample_rate)
        for packet in stream.encode(frame):
            out.mux(packet)
    for packet in stream.encode():
        out.mux(packet)


def face_photo() -> np.ndarray:
    """Grace Hopper's portrait from matplotlib's sample data, (600, 512, 3) uint8 RGB."""
    from matplotlib import cbook
    from PIL import Image

    with Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)) as image:
        return np.asarray(image.convert("RGB"))


def astronaut() -> np.ndarray:
    """Eileen Collins' portrait from scikit-image, (512, 512, 3) uint8 RGB."""
    from skimage import data

    return np.ascontiguousarray(data.astronaut())


def face_frames(
    num_frames: int, size: tuple[int, int] = (1280, 720), face_height: int | None = None
) -> np.ndarray:
    """Frames (N,H,W,3) with the Grace Hopper photo drifting over a moving gradient background."""
    from PIL import Image

    width, height = size
    face_height = face_height or int(height * 0.8)
    resized = Image.fromarray(face_photo()).resize((int(face_height * 512 / 600), face_height))
    photo = np.asarray(resized)
    ph, pw = photo.shape[:2]
    yy, xx = np.mgrid[0:height, 0:width]
    frames = np.empty((num_frames, height, width, 3), dtype=np.uint8)
    for i in range(num_frames):
        shift = i * 4
        frames[i, ..., 0] = (xx + shift) % 256
        frames[i, ..., 1] = (yy // 3 + shift) % 256
        frames[i, ..., 2] = 128
        x0 = (width - pw) // 2 + int(0.05 * width * np.sin(i / 15))
        y0 = (height - ph) // 2
        frames[i, y0 : y0 + ph, x0 : x0 + pw] = photo
    return frames


def face_video(
    path: str | os.PathLike,
    seconds: float = 2.0,
    size: tuple[int, int] = (320, 240),
    with_audio: bool = True,
    fps: int = 25,
    gop: int | None = None,
    channels: int = 1,
    rotation: int = 0,
) -> Path:
    """A clip where the Grace Hopper photo is visible in every frame, plus a voice-like track.

    `channels` > 1 repeats the voice on every channel (at decreasing levels). With `rotation`
    the frames are stored turned by that many degrees clockwise, with a display matrix that
    turns them back upright on playback, as a phone stores a portrait clip.
    """
    frames = face_frames(round(seconds * fps), size)
    if rotation:
        frames = np.ascontiguousarray(np.rot90(frames, -(rotation // 90), axes=(1, 2)))
    audio = voice_like(seconds) if with_audio else None
    if audio is not None and channels > 1:
        audio = np.stack([audio * (1.0 - 0.05 * c) for c in range(channels)], axis=1)
    return write_video(path, frames, fps=fps, audio=audio, gop=gop, rotation=rotation)


# --- hostile input: small files that used to crash, hang or exhaust memory ----------------------


def multichannel_audio(path: str | os.PathLike, seconds: float = 1.0, channels: int = 8) -> Path:
    """AAC voice in an mp4/m4a/mkv with `channels` channels (8: 7.1), no video."""
    path = Path(path)
    wave = voice_like(seconds, 48000)
    wave = np.stack([wave * (1.0 - 0.05 * c) for c in range(channels)], axis=1)
    container_format = "matroska" if path.suffix.lower() == ".mkv" else "mp4"
    with av.open(str(path), "w", format=container_format) as out:
        stream = out.add_stream("aac", rate=48000)
        stream.layout = _LAYOUTS[channels]
        _mux_audio(out, stream, wave, 48000)
    return path


def odd_rate_wav(path: str | os.PathLike, sample_rate: int, seconds: float = 3.0) -> Path:
    """A voice-like WAV at an arbitrary sample rate (44099 Hz: a gcd of 1 with 16 kHz)."""
    return write_audio(path, voice_like(seconds, sample_rate), sample_rate)


def long_flac(path: str | os.PathLike, hours: float = 4.0, sample_rate: int = 16000) -> Path:
    """Hours of near-silence in a FLAC of a few megabytes, written block by block."""
    block = np.zeros(sample_rate * 60, dtype=np.int16)
    block[:4000] = (3000 * np.sin(np.arange(4000) / 5)).astype(np.int16)  # a chirp per minute
    with sf.SoundFile(
        str(path), "w", samplerate=sample_rate, channels=1, format="FLAC", subtype="PCM_16"
    ) as out:
        for _ in range(round(hours * 60)):
            out.write(block)
    return Path(path)


def float_wav(path: str | os.PathLike, value: float, seconds: float = 2.0) -> Path:
    """A 32-bit float WAV of a voice with one sample set to `value` (inf, nan, 1e30...)."""
    wave = voice_like(seconds).astype(np.float64)
    wave[len(wave) // 2] = value
    sf.write(str(path), wave.astype(np.float32), 16000, subtype="FLOAT")
    return Path(path)


def huge_frame_video(
    path: str | os.PathLike, size: tuple[int, int] = (8000, 8000), num_frames: int = 2
) -> Path:
    """Flat H.264 frames of `size` pixels and a voice: kilobytes on disk, gigabytes decoded.

    Frames are built in YUV directly (no RGB conversion) and encoded with the fastest preset;
    8000 x 8000 still takes about a second and ~900 MB per frame to encode, so call this in a
    child process.
    """
    width, height = size
    with av.open(str(path), "w", format="matroska" if str(path).endswith(".mkv") else "mp4") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.options = {"preset": "ultrafast"}
        voice = out.add_stream("aac", rate=16000)
        voice.layout = "mono"
        frame = av.VideoFrame(width, height, "yuv420p")
        for plane in frame.planes:
            plane.update(np.full(plane.buffer_size, 100, np.uint8).tobytes())
        for i in range(num_frames):
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
        _mux_audio(out, voice, voice_like(max(num_frames / 25, 1.0)), 16000)
    return Path(path)


def damaged_mp3(path: str | os.PathLike, seconds: float = 6.0) -> Path:
    """An mp3 voice with 2 kB of random bytes overwriting its middle."""
    clean = Path(path).with_suffix(".clean.mp3")
    sf.write(str(clean), voice_like(seconds), 16000, subtype="MPEG_LAYER_III")
    data = bytearray(clean.read_bytes())
    clean.unlink()
    middle = len(data) // 2
    noise = np.random.default_rng(0).integers(0, 256, 2000, np.uint8)
    data[middle : middle + 2000] = noise.tobytes()
    Path(path).write_bytes(bytes(data))
    return Path(path)
