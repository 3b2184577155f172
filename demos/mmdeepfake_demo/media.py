"""Media the explanation views need besides the prediction: face crops and the voice.

The detector reports *where* the faces were (frame index and box) but keeps no pixels, so the
page decodes the same frames again with :mod:`mmdeepfake.media` and crops them. Paths are
checked first: the page only ever reads files that arrived through its own upload area.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mmdeepfake.errors import MediaNotFoundError

GALLERY_SIZE = 160


def upload_area() -> Path:
    """Gradio's upload folder: every file a visitor or an API client sends lands here."""
    from gradio.utils import get_upload_folder

    return Path(get_upload_folder()).resolve()


def checked_path(path: str | os.PathLike | None, what: str) -> str:
    """The path of an uploaded file, refusing anything outside the upload area.

    Gradio already refuses client-supplied paths outside it; checking again here means a change
    in the web framework cannot turn the page into a file reader for the server's disk.
    """
    if path is None or str(path) == "":
        raise MediaNotFoundError(f"no {what} was given; upload one (or record it) and try again")
    resolved = Path(path).resolve()
    if not resolved.is_relative_to(upload_area()):
        raise MediaNotFoundError(
            f"the {what} is not an uploaded file; upload it through the page or the API"
        )
    if not resolved.is_file():
        raise MediaNotFoundError(f"the uploaded {what} is no longer on the server; upload it again")
    return str(resolved)


def without_upload_folders(message: str) -> str:
    """A message with upload-area folders removed from paths, keeping the visitor's file name.

    Library errors name the file they failed on; in the page that is the server's copy of the
    upload, whose folders mean nothing to the visitor and need not be shown to them.
    """
    folders = re.escape(str(upload_area())) + r"/(?:[^/'\"\s]+/)*"
    return re.sub(folders, "", message)


def _crops(frames: Sequence[np.ndarray], faces: Sequence[dict[str, Any]]) -> np.ndarray:
    from mmdeepfake.media.faces import FaceBox, crop_faces

    chosen = [frames[f["frame_index"]] for f in faces if 0 <= f["frame_index"] < len(frames)]
    boxes = [FaceBox(*f["box"], f["score"]) for f in faces if 0 <= f["frame_index"] < len(frames)]
    if not chosen:
        return np.zeros((0, GALLERY_SIZE, GALLERY_SIZE, 3), dtype=np.uint8)
    return crop_faces(chosen, boxes, size=GALLERY_SIZE)


def video_media(path: str, pred: dict[str, Any], num_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """(face crops in the order of ``pred["faces"]``, 16 kHz mono voice) of a video."""
    from mmdeepfake.media import decode, features

    # A clip without sound (or with silent sound) is scored from its faces alone: show it too.
    clip = decode.load_video(
        path, num_frames=num_frames, sample_rate=features.SAMPLE_RATE, require_audio=False
    )
    wave = clip.audio if clip.audio is not None else np.zeros(0, dtype=np.float32)
    return _crops(list(clip.frames), pred["faces"]), wave


def pair_media(
    image: str | None, audio: str | None, pred: dict[str, Any]
) -> tuple[np.ndarray, np.ndarray]:
    """(face crops, 16 kHz mono voice) of a face image and a voice recording, either of which
    may be missing (no crops, or an empty voice)."""
    from mmdeepfake.media import decode, features

    frames = [decode.load_image(image)] if image is not None else []
    wave = (
        decode.load_audio(audio, sample_rate=features.SAMPLE_RATE, check_silence=False)
        if audio is not None
        else np.zeros(0, dtype=np.float32)
    )
    return _crops(frames, pred["faces"]), wave


def log_mel(wave: np.ndarray) -> np.ndarray:
    """(128, T) log-mel of a whole recording, with the front end the audio encoder uses."""
    import torch

    from mmdeepfake.media import features

    if wave.size == 0:
        return np.zeros((features.N_MELS, 1), dtype=np.float32)
    with torch.inference_mode():
        spec = features.LogMelSpectrogram()(torch.from_numpy(np.ascontiguousarray(wave))[None])
    return spec[0, 0].numpy()
