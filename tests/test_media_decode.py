"""Decoding of generated media, and the typed errors for every kind of bad input."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from mmdeepfake.errors import (
    CorruptMediaError,
    MediaNotFoundError,
    MediaTooLargeError,
    MmDeepfakeError,
    NoAudioTrackError,
    SilentAudioError,
    UnsupportedMediaError,
)
from mmdeepfake.media import decode, limits
from mmdeepfake.media.decode import (
    detect_media_kind,
    load_audio,
    load_image,
    load_video,
    load_video_audio,
    resample,
)
from mmdeepfake.testing import media as mf


def _dominant_freq(wave: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(wave * np.hanning(len(wave))))
    return float(np.fft.rfftfreq(len(wave), 1 / rate)[spectrum.argmax()])


@pytest.fixture(scope="module")
def counter_video(tmp_path_factory) -> tuple:
    """50 frames at 25 fps whose brightness encodes the frame index; keyframe every 5 frames."""
    frames = np.zeros((50, 64, 96, 3), dtype=np.uint8)
    for i in range(50):
        frames[i] = 20 + i * 4
    path = tmp_path_factory.mktemp("vid") / "counter.mp4"
    mf.write_video(path, frames, fps=25, audio=mf.voice_like(2.0), gop=5)
    return path, frames


# --- video -------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".mp4", ".mov", ".webm", ".mkv"])
def test_containers_decode_with_audio(tmp_path, suffix):
    path = mf.face_video(tmp_path / f"clip{suffix}", seconds=1.2, size=(160, 120))
    assert detect_media_kind(path) == "video"
    clip = load_video(path, num_frames=8)
    assert clip.frames.shape == (8, 120, 160, 3) and clip.frames.dtype == np.uint8
    assert np.all(np.diff(clip.frame_times) > 0)
    assert 0 <= clip.frame_times[0] and clip.frame_times[-1] < clip.duration
    assert clip.duration == pytest.approx(1.2, abs=0.1)
    assert clip.fps == pytest.approx(25)
    assert clip.sample_rate == 16000 and clip.audio.dtype == np.float32
    # Codec priming/padding may add a few ms, never more than ~50 ms.
    assert abs(len(clip.audio) - 1.2 * 16000) < 0.05 * 16000


def test_frames_match_their_timestamps(counter_video):
    path, frames = counter_video
    clip = load_video(path, num_frames=10)
    assert len(clip.frames) == 10
    expected = (np.arange(10) + 0.5) * 2.0 / 10
    assert np.allclose(clip.frame_times, expected, atol=0.041)
    for frame, t in zip(clip.frames, clip.frame_times):
        index = round(t * 25)
        assert abs(float(frame.mean()) - float(frames[index].mean())) < 2.0


def test_video_is_sampled_not_decoded_in_full(counter_video, monkeypatch):
    path, _ = counter_video
    decoded = []
    real = decode._decode

    def counting(*args, **kwargs):
        for item in real(*args, **kwargs):
            decoded.append(item)
            yield item

    monkeypatch.setattr(decode, "_decode", counting)
    clip = load_video(path, num_frames=3)
    assert len(clip.frames) == 3
    assert len(decoded) < 25  # 3 targets, keyframes every 5 frames: far fewer than 50 frames


def test_short_clip_gives_each_frame_once(tmp_path):
    frames = np.stack([np.full((32, 32, 3), 40 * i, np.uint8) for i in range(4)])
    path = mf.write_video(tmp_path / "short.mp4", frames, audio=mf.voice_like(0.16))
    clip = load_video(path, num_frames=16)
    assert 1 <= len(clip.frames) <= 4
    assert len(np.unique(clip.frame_times)) == len(clip.frame_times)


def test_video_from_bytes_and_array(tmp_path):
    path = mf.face_video(tmp_path / "clip.mp4", seconds=0.6, size=(96, 64))
    clip = load_video(path.read_bytes(), num_frames=4)
    assert clip.frames.shape == (4, 64, 96, 3)
    array_clip = load_video(np.zeros((10, 8, 8, 3), np.uint8), num_frames=4, require_audio=False)
    assert array_clip.frames.shape == (4, 8, 8, 3) and array_clip.audio is None


def test_video_without_audio(tmp_path):
    path = mf.face_video(tmp_path / "mute.mp4", seconds=0.4, size=(64, 64), with_audio=False)
    with pytest.raises(NoAudioTrackError, match="no audio track"):
        load_video(path)
    with pytest.raises(NoAudioTrackError, match="no audio track"):
        load_video_audio(path)
    clip = load_video(path, num_frames=4, require_audio=False)
    assert clip.audio is None and len(clip.frames) == 4
    with pytest.raises(NoAudioTrackError):
        load_audio(path)
    with pytest.raises(NoAudioTrackError, match="no audio track"):
        load_video_audio(np.zeros((4, 8, 8, 3), np.uint8))


def test_video_with_silent_track(tmp_path):
    frames = np.zeros((10, 32, 32, 3), np.uint8)
    path = mf.write_video(tmp_path / "silent.mp4", frames, audio=np.zeros(6400, np.float32))
    for loader in (load_video, load_video_audio):
        with pytest.raises(SilentAudioError, match="The audio track of .* is silent"):
            loader(path)


def test_frames_and_audio_track_read_apart_match_one_read(tmp_path):
    """What `predict` reads on two threads equals what one `load_video` call gives."""
    path = mf.face_video(tmp_path / "clip.mp4", seconds=1.2, size=(96, 64))
    whole = load_video(path, num_frames=6)
    frames_only = load_video(path.read_bytes(), num_frames=6, decode_audio=False)
    assert frames_only.audio is None
    np.testing.assert_array_equal(frames_only.frames, whole.frames)
    np.testing.assert_array_equal(frames_only.frame_times, whole.frame_times)
    np.testing.assert_array_equal(load_video_audio(path), whole.audio)
    with pytest.raises(UnsupportedMediaError):
        load_video_audio(mf.write_audio(tmp_path / "voice.wav", mf.voice_like(0.5)))


# --- audio -------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".wav", ".flac", ".ogg", ".mp3", ".m4a"])
def test_audio_formats_resampled_to_16k(tmp_path, suffix):
    path = mf.write_audio(tmp_path / f"tone{suffix}", mf.tone(440, 1.0, 44100, channels=2), 44100)
    assert detect_media_kind(path) == "audio"
    wave = load_audio(path)
    assert wave.dtype == np.float32 and wave.ndim == 1
    assert abs(len(wave) - 16000) < 0.08 * 16000  # mp3/aac add encoder delay and padding
    assert _dominant_freq(wave, 16000) == pytest.approx(440, abs=5)
    rms = float(np.sqrt(np.mean(np.square(wave[2000:-2000]))))
    assert rms == pytest.approx(0.5 / np.sqrt(2), rel=0.1)


def test_audio_track_of_video_and_bytes(tmp_path):
    path = mf.face_video(tmp_path / "clip.mp4", seconds=0.8, size=(64, 64))
    assert len(load_audio(path)) == pytest.approx(0.8 * 16000, rel=0.06)
    wav = mf.write_audio(tmp_path / "v.wav", mf.tone(300, 0.5))
    assert len(load_audio(wav.read_bytes())) == 8000


def test_audio_arrays():
    stereo16 = (mf.tone(500, 0.5, 8000, channels=2) * 32767).astype(np.int16)
    wave = load_audio(stereo16, source_rate=8000)
    assert len(wave) == 16000 * 0.5 and wave.dtype == np.float32
    assert np.abs(wave).max() == pytest.approx(0.5, abs=0.03)
    with pytest.raises(SilentAudioError):
        load_audio(np.zeros(16000, np.float32))
    assert load_audio(np.zeros(100, np.float32), check_silence=False).shape == (100,)


def test_resampler_keeps_band_and_rejects_aliases():
    kept = resample(mf.tone(1000, 1.0, 44100), 44100, 16000)
    assert len(kept) == 16000
    assert np.abs(kept[1000:-1000]).max() == pytest.approx(0.5, abs=0.01)
    assert _dominant_freq(kept, 16000) == pytest.approx(1000, abs=2)
    alias = resample(mf.tone(11000, 1.0, 48000), 48000, 16000)  # above the new Nyquist
    assert np.abs(alias[1000:-1000]).max() < 0.01


# --- images ------------------------------------------------------------------------------------


def test_exif_orientation_is_honoured(tmp_path):
    image = np.zeros((20, 40, 3), np.uint8)
    image[:, :20] = (255, 0, 0)  # left half red
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    path = tmp_path / "rotated.jpg"
    Image.fromarray(image).save(path, exif=exif.tobytes(), quality=95)
    loaded = load_image(path)
    assert loaded.shape == (40, 20, 3)
    assert loaded[:15, :, 0].mean() > 200 and loaded[-15:, :, 0].mean() < 60  # red now on top


def test_image_modes_converted(tmp_path):
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 3] = 0  # fully transparent: white after compositing
    path = tmp_path / "a.png"
    Image.fromarray(rgba, "RGBA").save(path)
    assert load_image(path).min() == 255
    Image.fromarray(np.full((8, 8), 7, np.uint8), "L").save(path)
    assert load_image(path).shape == (8, 8, 3)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).convert("P").save(path)
    assert load_image(path.read_bytes()).shape == (8, 8, 3)
    assert load_image(np.ones((4, 5), np.float32)).max() == 255


# --- bad input ---------------------------------------------------------------------------------


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))


def test_oversized_image(tmp_path):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(_png_header_only(30000, 30000))  # 900 MP claimed in a 100-byte file
    with pytest.raises(MediaTooLargeError, match="too large"):
        load_image(bomb)
    with pytest.raises(MediaTooLargeError):
        load_image(_png_header_only(12000, 9000))
    small = tmp_path / "small.png"
    Image.new("RGB", (100, 100)).save(small)
    with pytest.raises(MediaTooLargeError, match="max_pixels"):
        load_image(small, max_pixels=5000)


def test_missing_and_empty(tmp_path):
    with pytest.raises(MediaNotFoundError, match="does not exist"):
        load_video(tmp_path / "nope.mp4")
    with pytest.raises(MediaNotFoundError, match="not a file"):
        load_image(tmp_path)
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(CorruptMediaError, match="empty"):
        load_audio(empty)
    with pytest.raises(CorruptMediaError, match="empty"):
        load_image(b"")


def test_file_size_limit(tmp_path, monkeypatch):
    path = mf.write_audio(tmp_path / "t.wav", mf.tone())
    monkeypatch.setattr(limits, "MAX_FILE_BYTES", 1000)
    with pytest.raises(MediaTooLargeError, match="limit"):
        load_audio(path)


def test_content_not_name_decides(tmp_path):
    fake_wav = tmp_path / "photo.wav"
    Image.new("RGB", (16, 16)).save(fake_wav, format="JPEG")
    with pytest.raises(
        UnsupportedMediaError, match="named like an audio file but contains an image"
    ):
        load_audio(fake_wav)
    with pytest.raises(UnsupportedMediaError, match="contains"):
        detect_media_kind(fake_wav)
    assert detect_media_kind(fake_wav.read_bytes()) == "image"  # bytes carry no name

    text = tmp_path / "notes.mp4"
    text.write_text("these are meeting notes, not a video\n" * 5)
    with pytest.raises(UnsupportedMediaError, match="text file"):
        load_video(text)

    wav = mf.write_audio(tmp_path / "voice.wav", mf.tone())
    with pytest.raises(UnsupportedMediaError, match="expected"):
        load_image(wav)
    with pytest.raises(UnsupportedMediaError, match="expected"):
        load_video(wav)


def test_random_bytes(tmp_path):
    junk = np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    path = tmp_path / "clip.mp4"
    path.write_bytes(junk)
    for loader in (load_video, load_audio, load_image):
        with pytest.raises(UnsupportedMediaError, match="recognised"):
            loader(path)


def test_truncated_files(tmp_path):
    video = mf.face_video(tmp_path / "clip.mp4", seconds=0.8, size=(64, 64))
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(video.read_bytes()[: video.stat().st_size // 2])
    with pytest.raises(CorruptMediaError, match="truncated or damaged"):
        load_video(cut)

    buffer = io.BytesIO()
    Image.fromarray(mf.astronaut()).save(buffer, format="JPEG")
    with pytest.raises(CorruptMediaError, match="truncated"):
        load_image(buffer.getvalue()[:3000])

    wav = mf.write_audio(tmp_path / "v.wav", mf.tone())
    with pytest.raises(CorruptMediaError):
        load_audio(wav.read_bytes()[:30])


def test_damaged_video_never_leaks_decoder_errors(tmp_path):
    data = bytearray(mf.face_video(tmp_path / "clip.mp4", seconds=0.8, size=(64, 64)).read_bytes())
    rng = np.random.default_rng(1)
    for start in rng.integers(100, len(data) - 200, 4):
        damaged = bytearray(data)
        damaged[start : start + 150] = rng.integers(0, 256, 150, dtype=np.uint8).tobytes()
        try:
            load_video(bytes(damaged), num_frames=4)
        except MmDeepfakeError:
            pass


def test_unknown_array_shape():
    with pytest.raises(UnsupportedMediaError, match="shape"):
        detect_media_kind(np.zeros((2, 3, 4, 5, 6)))
