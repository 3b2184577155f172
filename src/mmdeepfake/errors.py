"""Typed, user-facing errors.

Every failure a person can cause or fix (bad media, a missing bucket, a broken checkpoint)
raises a subclass of :class:`MmDeepfakeError` whose message says what is wrong and what to do.
The command-line tools print the message and exit non-zero without a traceback; the demo shows
it in the page; training counts and reports samples that fail this way instead of crashing.

Advice that names a Python argument ("pass detect_faces=False") helps a library user but not
someone at the command line or on the demo page, where that argument is a flag or a control, or
does not exist. So an error states its problem in ``message`` and names the remedy by a *hint*
key; ``str(error)`` appends the library's wording of the remedy (:data:`LIBRARY_ADVICE`), and
each front end renders the same error with its own wording through :func:`render`.
"""

from __future__ import annotations

from collections.abc import Mapping

DETECT_FACES = "detect_faces"
LOCAL_MODEL_FOLDER = "local_model_folder"

LIBRARY_ADVICE: dict[str, str] = {
    DETECT_FACES: "If the images are already cropped to a face, pass detect_faces=False.",
    LOCAL_MODEL_FOLDER: (
        "To use a model without the hub, give the folder written by Detector.save_pretrained "
        "(config.json + model.safetensors), e.g. Detector.from_pretrained('./my-model')."
    ),
}


class MmDeepfakeError(Exception):
    """Base class of every error mmdeepfake raises for a user mistake or bad input.

    Args:
        message: what is wrong, and what to do where the remedy needs no argument name.
        hint: a key of :data:`LIBRARY_ADVICE` naming a remedy that front ends word their way.
    """

    exit_code: int = 2
    hint: str | None = None

    def __init__(self, message: str = "", *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if hint is not None:
            self.hint = hint

    def __str__(self) -> str:
        return render(self, LIBRARY_ADVICE)


def render(error: BaseException, advice: Mapping[str, str]) -> str:
    """The error's message followed by ``advice[error.hint]``, or the message alone.

    A front end passes its own table (flags for the CLI, control names for the page); a hint
    missing from the table is a remedy that front end does not offer, so nothing is advised.
    """
    message = getattr(error, "message", None)
    if message is None:
        return Exception.__str__(error)
    remedy = advice.get(getattr(error, "hint", None) or "")
    return f"{message} {remedy}" if remedy else message


# --- media -------------------------------------------------------------------------------------


class MediaError(MmDeepfakeError):
    """The media given to mmdeepfake cannot be used."""


class MediaNotFoundError(MediaError):
    """A path that does not exist or is not a file."""


class UnsupportedMediaError(MediaError):
    """A file whose format mmdeepfake does not read, or whose content does not match its name."""


class CorruptMediaError(MediaError):
    """A file in a known format that cannot be decoded (truncated, damaged, empty)."""


class NoAudioTrackError(MediaError):
    """A video with no audio stream, where the voice is needed."""


class SilentAudioError(MediaError):
    """Audio that carries no signal to analyse."""


class NoFaceFoundError(MediaError):
    """No face was found in any analysed image or frame."""


class MediaTooLargeError(MediaError):
    """A file or image beyond the size limits (for example a decompression bomb)."""


class MediaUnreadableError(MediaError):
    """A file the system refuses to read: permission denied, a path too long, an I/O error."""


# --- storage and data --------------------------------------------------------------------------


class StorageError(MmDeepfakeError):
    """Reading from or writing to a local folder or an S3 bucket failed."""


class BucketNotFoundError(StorageError):
    """The S3 bucket does not exist or is not visible with these credentials."""


class CredentialsError(StorageError):
    """No valid credentials for S3 were found, or they were refused."""


class DatasetError(MmDeepfakeError):
    """A dataset does not follow the expected layout (missing prefix, empty split, ...)."""


# --- models, configuration, training -----------------------------------------------------------


class CheckpointError(MmDeepfakeError):
    """A model folder, hub id or checkpoint that cannot be loaded."""


class HubUnreachableError(CheckpointError):
    """The Hugging Face Hub cannot be reached and the model is not in the local cache."""

    hint = LOCAL_MODEL_FOLDER


class ConfigError(MmDeepfakeError):
    """An invalid configuration value, preset name or command-line flag combination."""


class WorkerDiedError(MmDeepfakeError):
    """A worker process ended without answering (killed, or out of memory)."""


class MemoryBudgetError(MmDeepfakeError):
    """Training cannot stay under its memory cap even at the smallest batch size."""
