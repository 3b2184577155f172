"""Media the explanation views need besides the prediction: face crops and the voice.

Detection asks the detector's pipeline to hand back the face crops and the voice it scored
(``DetectionPipeline.run(..., keep_media=True)``), so the views show exactly what the model
read without decoding the upload a second time; :class:`ShownMedia` carries them, shrunk to
the gallery's size, from detection to the views. Paths are checked first: the page only ever
reads files that arrived through its own upload area.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mmdeepfake.errors import MediaNotFoundError

if TYPE_CHECKING:
    from mmdeepfake.pipeline import PipelineResult

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


@dataclass(frozen=True)
class ShownMedia:
    """What the views show of one detection: the face crops, in the order of the prediction's
    ``faces`` and sized for the gallery, and the 16 kHz mono voice (empty when none was
    scored)."""

    crops: np.ndarray
    wave: np.ndarray


def shown_media(result: PipelineResult) -> ShownMedia:
    """The crops and voice a pipeline run kept (``keep_media=True``), crops resized for the
    gallery so a page session holds thumbnails, not the model's full-size crops."""
    if result.crops is None or result.wave is None:
        raise ValueError("the pipeline run did not keep its media; pass keep_media=True")
    return ShownMedia(crops=_thumbnails(result.crops), wave=result.wave)


def _thumbnails(crops: np.ndarray) -> np.ndarray:
    from PIL import Image

    if len(crops) == 0:
        return np.zeros((0, GALLERY_SIZE, GALLERY_SIZE, 3), dtype=np.uint8)
    size = (GALLERY_SIZE, GALLERY_SIZE)
    return np.stack(
        [
            np.asarray(Image.fromarray(crop).resize(size, Image.Resampling.BILINEAR))
            for crop in crops
        ]
    )


def log_mel(wave: np.ndarray) -> np.ndarray:
    """(128, T) log-mel of a whole recording, with the front end the audio encoder uses."""
    import torch

    from mmdeepfake.media import features

    if wave.size == 0:
        return np.zeros((features.N_MELS, 1), dtype=np.float32)
    with torch.inference_mode():
        spec = features.LogMelSpectrogram()(torch.from_numpy(np.ascontiguousarray(wave))[None])
    return spec[0, 0].numpy()
