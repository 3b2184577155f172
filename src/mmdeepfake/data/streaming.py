"""Streaming training data: sample bytes go from storage (S3 or a folder) straight to tensors.

Nothing of the dataset touches local disk: each object is read into memory, decoded with
:mod:`mmdeepfake.media` and dropped. Reads run on a small thread pool with a bounded number of
requests in flight, so the latency of S3 GETs overlaps with decoding and with the model's own
compute (the network should not be the bottleneck). Samples are sharded first across torchrun
ranks, then across DataLoader workers, so no sample is read twice per epoch, and the frames of
a clip share one read of its recording (:mod:`mmdeepfake.data.shared_reads`). A sample whose
object is missing or cannot be decoded is not fatal: it is skipped and travels through the
DataLoader as a :class:`SkippedSample`, so the trainer can count and report it even when it was
met in a worker process.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from mmdeepfake.config import PreprocessConfig
from mmdeepfake.data.shared_reads import SharedReads
from mmdeepfake.data.storage import KeyNotFoundError, S3Storage, Storage, check_size
from mmdeepfake.errors import (
    BucketNotFoundError,
    ConfigError,
    CredentialsError,
    MmDeepfakeError,
    StorageError,
)
from mmdeepfake.media import limits

log = logging.getLogger("mmdeepfake.train")

Reader = Callable[[str], bytes]


@dataclass(frozen=True)
class SkippedSample:
    """A sample that could not be used, with the object at fault and why."""

    key: str
    reason: str


@dataclass(frozen=True)
class StreamedSample:
    faces: torch.Tensor  # (3, 224, 224) normalised
    face_detected: bool  # False: no face found, the image was centre-cropped
    wave: torch.Tensor  # (WINDOW_SAMPLES,)
    label: int
    face_emotion: int
    voice_emotion: int
    image_key: str
    audio_key: str
    image_label: int = -1  # target of the image head; -1: the clip's label
    audio_label: int = -1  # target of the audio head; -1: the clip's label


#: Decoded recordings one loader worker holds at most while frames of their clip are still to
#: come in its epoch: about 130 kB each (a 2.032 s window of float32 samples), 33 MB in all.
RECORDING_CACHE = 256

#: Names of the ways to read S3 objects (``s3_reader`` in the training config).
S3_READERS = ("auto", "boto3", "s3torchconnector")


def make_reader(storage: Storage, backend: str = "auto") -> Reader:
    """A function reading one object into memory.

    ``s3torchconnector`` uses AWS's CRT-based client (the ``s3torchconnector`` package, part of
    the ``train`` extra): its requests run in native code, outside the GIL, at about a third of
    botocore's CPU per GET (measured: 0.18 s against 0.55 s of client CPU for 336 GETs of 40 kB
    from a local S3 server, 16 at a time), which the decoding and the training step share.
    ``boto3`` uses the storage's own client (retries with adaptive backoff). ``auto`` picks
    s3torchconnector when it is installed, boto3 otherwise. Local folders always read files
    directly. Either way a missing object raises KeyNotFoundError and other failures a
    StorageError subclass.
    """
    if backend not in S3_READERS:
        raise ConfigError(f"s3_reader must be one of {', '.join(S3_READERS)}; got {backend!r}")
    if not isinstance(storage, S3Storage) or backend == "boto3":
        return storage.read_bytes
    if backend == "auto" and not _connector_installed():
        return storage.read_bytes
    return _S3ConnectorReader(storage)


def _connector_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("s3torchconnector") is not None


class _S3ConnectorReader:
    """Reads objects with s3torchconnector's S3Client (one per endpoint, shared in a process)."""

    def __init__(self, storage: S3Storage) -> None:
        self.storage = storage

    def __call__(self, key: str) -> bytes:
        client = _connector_client(self.storage.endpoint_url)
        from s3torchconnectorclient import S3Exception

        full = self.storage.prefix + key
        limit = limits.MAX_FILE_BYTES
        try:
            # Read one byte past the cap at most: an oversized object is refused, not held.
            data = client.get_object(self.storage.bucket, full).read(limit + 1)
        except S3Exception as exc:
            raise _connector_error(exc, self.storage, key) from exc
        check_size(self.storage.uri(key), len(data), limit)
        return data


#: What an s3torchconnector client is made from, besides the endpoint: a change makes a new one.
_CLIENT_ENVIRONMENT = (
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_PROFILE",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
)
_CONNECTOR_CLIENTS: dict[tuple[str | None, ...], Any] = {}
_CONNECTOR_LOCK = threading.Lock()


def _connector_client(endpoint: str | None) -> Any:
    """The process's s3torchconnector client for ``endpoint``, made on first use.

    One client serves every loader of a run (each epoch's, the validation's, all their
    threads): making one costs about 35 ms of CPU, and its first requests open new
    connections. A change of region or credentials in the environment makes a new one; the
    package itself makes the client's native part again in a forked DataLoader worker.
    """
    settings = tuple(os.environ.get(name) for name in _CLIENT_ENVIRONMENT)
    key = (endpoint, *settings)
    with _CONNECTOR_LOCK:
        client = _CONNECTOR_CLIENTS.get(key)
        if client is None:
            try:
                from s3torchconnector import S3ClientConfig
                from s3torchconnector._s3client import S3Client
            except ImportError:
                raise MmDeepfakeError(
                    "s3_reader is s3torchconnector but the package is not installed; run "
                    "`pip install s3torchconnector` or set s3_reader: boto3"
                ) from None
            region = settings[0] or settings[1] or "us-east-1"
            config = S3ClientConfig(force_path_style=bool(endpoint))
            client = S3Client(region, endpoint=endpoint, s3client_config=config)
            _CONNECTOR_CLIENTS[key] = client
        return client


def _new_lock_in_child() -> None:
    """A forked process (a DataLoader worker) must not inherit the lock held by a thread."""
    global _CONNECTOR_LOCK
    _CONNECTOR_LOCK = threading.Lock()


os.register_at_fork(after_in_child=_new_lock_in_child)


def _connector_error(exc: Exception, storage: S3Storage, key: str) -> StorageError:
    """The typed error for an s3torchconnector failure (it reports them as messages only)."""
    message = str(exc)
    where = storage.uri(key)
    if "key does not exist" in message:
        return KeyNotFoundError(f"{where} does not exist; check the key and the prefix")
    if "bucket does not exist" in message:
        return BucketNotFoundError(
            f"bucket {storage.bucket} does not exist or is not visible to these credentials; "
            "create it or check --bucket"
        )
    if any(word in message for word in ("Forbidden", "AccessDenied", "credentials", "signature")):
        return CredentialsError(
            f"S3 refused the credentials to read {where} ({message}); check AWS_ACCESS_KEY_ID/"
            f"AWS_SECRET_ACCESS_KEY (or the profile) and that they may read bucket {storage.bucket}"
        )
    return StorageError(f"S3 could not read {where}: {message}")


def decode_face(
    data: bytes, margin: float | None = None, preprocess: PreprocessConfig | None = None
) -> tuple[torch.Tensor, bool]:
    """Face image bytes -> a normalised (3, S, S) tensor, and whether a face was detected.

    Dataset frames are face images, but how tightly each source crops them varies; running
    them through the same detector and crop as ``Detector.predict`` keeps training and
    inference framing identical. ``margin`` is the model's framing (``Detector.face_margin``;
    the pipeline default when None); ``preprocess`` the model's face detector settings, crop
    size S and normalisation (``Detector.preprocess``; the defaults when None). Images where
    no face is detected are centre-cropped and counted by the trainer.
    """
    from mmdeepfake.media.decode import load_image
    from mmdeepfake.media.faces import FACE_MARGIN, FaceDetector, crop_main_face
    from mmdeepfake.media.features import IMAGE_SIZE, faces_to_tensor

    settings = preprocess or PreprocessConfig()
    framing = FACE_MARGIN if margin is None else margin
    face, detected = crop_main_face(
        load_image(data),
        detector=FaceDetector.shared(**settings.face_detector_kwargs()),
        size=IMAGE_SIZE,
        margin=framing,
    )
    tensor = faces_to_tensor(
        np.ascontiguousarray(face)[None],
        size=settings.image_size,
        mean=settings.image_mean,
        std=settings.image_std,
    )
    return tensor[0], detected


def decode_voice(data: bytes, *, trim_silence: bool = False) -> torch.Tensor:
    """Voice recording bytes -> one (WINDOW_SAMPLES,) window at 16 kHz (centre crop or pad).

    ``trim_silence`` cuts the recording's leading and trailing silence first
    (:func:`mmdeepfake.media.silence.trim_silence`), for the evaluator's silence audit.
    """
    from mmdeepfake.media.decode import load_audio
    from mmdeepfake.media.features import SAMPLE_RATE

    return voice_window(load_audio(data, sample_rate=SAMPLE_RATE), trim_silence=trim_silence)


def voice_window(wave: np.ndarray, *, trim_silence: bool = False) -> torch.Tensor:
    """A 16 kHz voice -> one (WINDOW_SAMPLES,) window (centre crop or pad); ``trim_silence``
    as in :func:`decode_voice`."""
    from mmdeepfake.media.features import SAMPLE_RATE, fit_window

    if trim_silence:
        from mmdeepfake.media.silence import trim_silence as find_sound

        start, end = find_sound(wave, SAMPLE_RATE)
        wave = wave[start:end]
    return fit_window(wave)


def shard_indices(
    n: int,
    *,
    epoch: int,
    seed: int,
    shuffle: bool,
    rank: int,
    world_size: int,
    worker: int = 0,
    num_workers: int = 1,
    equal: bool = True,
) -> list[int]:
    """Indices of the samples one (rank, worker) reads in one epoch.

    Every rank draws the same permutation (seed + epoch), takes every ``world_size``-th item
    from its own offset, and, with ``equal``, trims to the length of the shortest rank so all
    ranks step the same number of times. Workers then split their rank's share the same way.
    """
    order = np.arange(n)
    if shuffle:
        order = np.random.default_rng([seed, epoch]).permutation(n)
    per_rank = n // world_size if equal and world_size > 1 else None
    mine = order[rank::world_size]
    if per_rank is not None:
        mine = mine[:per_rank]
    return [int(i) for i in mine[worker::num_workers]]


class StreamingPairDataset(IterableDataset):
    """Paired (face image, voice recording) samples streamed from a :class:`Storage`.

    ``samples`` may also hold videos (:class:`~mmdeepfake.data.video_samples.VideoSample`),
    each decoded into one sample per frame with a face; shuffled, their frames are mixed
    among several videos' (:func:`~mmdeepfake.data.video_samples.mix_items`). Yields
    :class:`StreamedSample` for good samples and :class:`SkippedSample` for bad ones (use
    :func:`collate_samples`). ``prefetch`` is the number of reads in flight per worker.
    Each recording is read and decoded once per epoch and worker for all the frames paired with
    it, holding at most ``recording_cache`` decoded recordings at a time (0: one read per
    sample); the samples are the same either way.
    """

    def __init__(
        self,
        storage: Storage,
        samples: Sequence[Any],
        *,
        shuffle: bool = False,
        seed: int = 0,
        prefetch: int = 16,
        rank: int = 0,
        world_size: int = 1,
        reader: Reader | None = None,
        equal_shards: bool = True,
        face_margin: float | None = None,
        preprocess: PreprocessConfig | None = None,
        trim_silence: bool = False,
        recording_cache: int = RECORDING_CACHE,
    ) -> None:
        self.storage = storage
        self.recording_cache = recording_cache
        self.trim_silence = trim_silence
        self.face_margin = face_margin
        self.preprocess = preprocess
        self.samples = list(samples)
        self.shuffle = shuffle
        self.seed = seed
        self.prefetch = max(1, int(prefetch))
        self.rank = rank
        self.world_size = world_size
        self.reader = reader or storage.read_bytes
        self.equal_shards = equal_shards
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """A different, reproducible order each epoch (same on every rank)."""
        self.epoch = epoch

    def __len__(self) -> int:
        """Samples this rank reads per epoch (before any are skipped); a video counts as the
        frames it is sampled at."""
        from mmdeepfake.data.video_samples import VideoSample, frames_per_video

        per_video = frames_per_video(self.preprocess)
        mine = shard_indices(
            len(self.samples),
            epoch=0,
            seed=0,
            shuffle=False,
            rank=self.rank,
            world_size=self.world_size,
            equal=self.equal_shards,
        )
        return sum(per_video if isinstance(self.samples[i], VideoSample) else 1 for i in mine)

    def my_indices(self) -> list[int]:
        info = get_worker_info()
        worker, num_workers = (info.id, info.num_workers) if info else (0, 1)
        return shard_indices(
            len(self.samples),
            epoch=self.epoch,
            seed=self.seed,
            shuffle=self.shuffle,
            rank=self.rank,
            world_size=self.world_size,
            worker=worker,
            num_workers=num_workers,
            equal=self.equal_shards,
        )

    def _load_voice(self, key: str) -> torch.Tensor:
        return decode_voice(self.reader(key), trim_silence=self.trim_silence)

    def _load(
        self, index: int, voices: SharedReads[torch.Tensor]
    ) -> list[StreamedSample | SkippedSample]:
        """What sample ``index`` gives: one item for a face frame, one per frame for a video."""
        from mmdeepfake.data.video_samples import VideoSample, load_video_sample

        sample = self.samples[index]
        if isinstance(sample, VideoSample):
            return load_video_sample(
                sample,
                self.reader,
                face_margin=self.face_margin,
                preprocess=self.preprocess,
                trim_silence=self.trim_silence,
            )
        return [self._load_pair(sample, voices)]

    def _load_pair(
        self, sample: Any, voices: SharedReads[torch.Tensor]
    ) -> StreamedSample | SkippedSample:
        key = sample.image_key
        try:
            faces, face_detected = decode_face(self.reader(key), self.face_margin, self.preprocess)
            key = sample.audio_key
            wave = voices.get(key)
        except KeyNotFoundError as exc:
            return SkippedSample(key=key, reason=f"{type(exc).__name__}: {exc}")
        except StorageError:
            raise  # credentials, a vanished bucket, a broken network: not one sample's fault
        except Exception as exc:  # noqa: BLE001 - any decoder failure is this sample's fault
            return SkippedSample(key=key, reason=f"{type(exc).__name__}: {exc}")
        return StreamedSample(
            faces=faces,
            face_detected=face_detected,
            wave=wave,
            label=int(sample.label),
            face_emotion=int(sample.face_emotion),
            voice_emotion=int(sample.voice_emotion),
            image_key=sample.image_key,
            audio_key=sample.audio_key,
            image_label=int(getattr(sample, "image_label", -1)),
            audio_label=int(getattr(sample, "audio_label", -1)),
        )

    def __iter__(self) -> Iterator[StreamedSample | SkippedSample]:
        from mmdeepfake.data.video_samples import (
            MIX_VIDEOS,
            VideoSample,
            frames_per_video,
            mix_items,
        )

        indices = self.my_indices()
        items = self._read(indices)
        if self.shuffle and any(isinstance(self.samples[i], VideoSample) for i in indices):
            # A video gives all its frames at once: shuffle them among several videos' frames.
            info = get_worker_info()
            worker = info.id if info else 0
            rng = np.random.default_rng([self.seed, self.epoch, self.rank, worker])
            items = mix_items(items, MIX_VIDEOS * frames_per_video(self.preprocess), rng)
        return items

    def _read(self, indices: list[int]) -> Iterator[StreamedSample | SkippedSample]:
        from mmdeepfake.data.video_samples import VideoSample

        # Videos read their own voice; face frames share their recording's one read.
        voices = SharedReads(
            (
                self.samples[i].audio_key
                for i in indices
                if not isinstance(self.samples[i], VideoSample)
            ),
            self._load_voice,
            self.recording_cache,
        )
        with ThreadPoolExecutor(
            max_workers=self.prefetch, thread_name_prefix="mmdeepfake-prefetch"
        ) as pool:
            pending: deque[Future] = deque()
            it = iter(indices)
            for index in it:
                pending.append(pool.submit(self._load, index, voices))
                if len(pending) >= self.prefetch:
                    break
            while pending:
                result = pending.popleft().result()
                nxt = next(it, None)
                if nxt is not None:
                    pending.append(pool.submit(self._load, nxt, voices))
                yield from result


def collate_samples(items: list[StreamedSample | SkippedSample]) -> dict[str, Any]:
    """Stack good samples into tensors; keep the skipped ones beside them for reporting.

    ``labels`` is the pair's label; ``image_labels``/``audio_labels`` the per-modality targets
    of the image and audio heads (-1 where unknown: the loss uses ``labels`` there).
    """
    good = [s for s in items if isinstance(s, StreamedSample)]
    skipped = [s for s in items if isinstance(s, SkippedSample)]
    if good:
        batch: dict[str, Any] = {
            "faces": torch.stack([s.faces for s in good]),
            "waves": torch.stack([s.wave for s in good]),
            "face_detected": torch.tensor([s.face_detected for s in good], dtype=torch.bool),
            "labels": torch.tensor([s.label for s in good], dtype=torch.float32),
            "face_emotions": torch.tensor([s.face_emotion for s in good], dtype=torch.long),
            "voice_emotions": torch.tensor([s.voice_emotion for s in good], dtype=torch.long),
            "image_labels": torch.tensor([s.image_label for s in good], dtype=torch.long),
            "audio_labels": torch.tensor([s.audio_label for s in good], dtype=torch.long),
            "image_keys": [s.image_key for s in good],
            "audio_keys": [s.audio_key for s in good],
        }
    else:
        batch = {"faces": None}
    batch["skipped"] = skipped
    return batch


def build_split_loader(
    storage: Storage,
    index: Any,
    split: str,
    batch_size: int,
    *,
    seed: int = 0,
    shuffle: bool = False,
    num_workers: int = 0,
    prefetch: int = 16,
    rank: int = 0,
    world_size: int = 1,
    s3_reader: str = "auto",
    samples: Sequence[Any] | None = None,
    equal_shards: bool = True,
    face_margin: float | None = None,
    preprocess: PreprocessConfig | None = None,
    trim_silence: bool = False,
) -> DataLoader:
    """A DataLoader over one split of a scanned dataset (pairs drawn with ``seed``).

    Batches are dicts from :func:`collate_samples`; ``batch["skipped"]`` lists bad samples.
    Pass ``samples`` to reuse pairs already drawn (so a log can count true pairs once).
    ``equal_shards`` trims every rank to the same sample count (needed for training steps
    under DDP); turn it off to score every sample of a split across ranks. ``face_margin`` and
    ``preprocess`` crop and normalise faces as the model does (see :func:`decode_face`);
    ``trim_silence`` drops each recording's leading and trailing silence (see
    :func:`decode_voice`).
    """
    if samples is None:
        from mmdeepfake.data.layout import pair_samples

        samples = pair_samples(index, split, seed)
    dataset = StreamingPairDataset(
        storage,
        samples,
        shuffle=shuffle,
        seed=seed,
        prefetch=prefetch,
        rank=rank,
        world_size=world_size,
        reader=make_reader(storage, s3_reader),
        equal_shards=equal_shards,
        face_margin=face_margin,
        preprocess=preprocess,
        trim_silence=trim_silence,
    )
    return DataLoader(
        dataset,
        batch_size=batch_size,
        num_workers=num_workers,
        collate_fn=collate_samples,
        persistent_workers=False,
        pin_memory=torch.cuda.is_available(),
    )
