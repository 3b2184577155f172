"""Typed, user-facing errors.

Every failure a person can cause or fix (bad media, a missing bucket, a broken checkpoint)
raises a subclass of :class:`MmDeepfakeError` whose message says what is wrong and what to do.
The command-line tools print the message and exit non-zero without a traceback; the demo shows
it in the page; training counts and reports samples that fail this way instead of crashing.
"""

from __future__ import annotations


class MmDeepfakeError(Exception):
    """Base class of every error mmdeepfake raises for a user mistake or bad input."""

    exit_code: int = 2


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


class ConfigError(MmDeepfakeError):
    """An invalid configuration value, preset name or command-line flag combination."""


class MemoryBudgetError(MmDeepfakeError):
    """Training cannot stay under its memory cap even at the smallest batch size."""
