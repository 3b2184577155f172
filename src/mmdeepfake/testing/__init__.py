"""Real media files for your own tests: ``from mmdeepfake.testing import face_video``.

Tests of code built on mmdeepfake need clips the library can actually decode, with a face a
detector finds and a voice-like track, without downloading or checking in binaries. The
helpers here generate them on the fly with PyAV, soundfile and Pillow, deterministically and
in a fraction of a second for a short clip; mmdeepfake's own test suite and benchmark scripts
use the same ones. The face photographs come from optional packages, imported on first use:
:func:`face_photo` (and everything built on it) needs matplotlib, :func:`astronaut` needs
scikit-image.

Typical use::

    from mmdeepfake.testing import face_video, voice_like, write_audio

    clip = face_video(tmp_path / "clip.mp4", seconds=2.0)      # H.264 + AAC, face in view
    voice = write_audio(tmp_path / "voice.wav", voice_like(3.0))

:mod:`mmdeepfake.testing.media` also holds the hostile inputs the library must refuse cleanly
(``huge_frame_video``, ``damaged_mp3``, ``float_wav``...).
"""

from __future__ import annotations

from mmdeepfake.testing.media import (
    astronaut,
    face_frames,
    face_photo,
    face_video,
    tone,
    voice_like,
    write_audio,
    write_video,
)

__all__ = [
    "astronaut",
    "face_frames",
    "face_photo",
    "face_video",
    "tone",
    "voice_like",
    "write_audio",
    "write_video",
]
