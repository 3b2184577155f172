"""The streaming loader's reads: one per recording and epoch, and one S3 client per process.

Counts requests on real storages (a folder, the local moto S3 server): the frames of a clip
share one read of its recording, without changing any sample, and the clients that S3 reads go
through are made once however many loaders and threads use them.
"""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from mmdeepfake.data import storage as storage_module
from mmdeepfake.data import streaming
from mmdeepfake.data.layout import pair_samples, scan_dataset
from mmdeepfake.data.shared_reads import SharedReads
from mmdeepfake.data.storage import KeyNotFoundError, LocalStorage, S3Storage, open_storage
from mmdeepfake.data.streaming import (
    RECORDING_CACHE,
    StreamingPairDataset,
    build_split_loader,
    make_reader,
)

FRAMES_PER_CLIP = 3


class CountingStorage(LocalStorage):
    """A folder that counts how often each key is read."""

    def __init__(self, root) -> None:
        super().__init__(root)
        self.reads: Counter[str] = Counter()
        self._lock = threading.Lock()

    def read_bytes(self, key: str, *, max_bytes: int | None = None) -> bytes:
        with self._lock:
            self.reads[key] += 1
        return super().read_bytes(key, max_bytes=max_bytes)


@pytest.fixture(scope="module")
def dataset_root(tmp_path_factory):
    from mmdeepfake.data.synth import generate_dataset

    root = tmp_path_factory.mktemp("streamed")
    generate_dataset(open_storage(root), clips=10, seed=4, frames_per_clip=FRAMES_PER_CLIP)
    return root


def _audio_reads(storage: CountingStorage) -> Counter[str]:
    return Counter({k: n for k, n in storage.reads.items() if k.startswith("audio/")})


# --- shared reads -------------------------------------------------------------------------------


def test_each_value_is_loaded_once_for_all_its_uses_and_dropped_after_the_last():
    loaded: list[str] = []
    reads = SharedReads(["a", "b", "a", "a", "c"], lambda key: loaded.append(key) or key * 2, 8)
    assert [reads.get(k) for k in ["a", "b", "a", "c", "a"]] == ["aa", "bb", "aa", "cc", "aa"]
    assert loaded == ["a", "b", "c"]
    assert reads.get("a") == "aa" and loaded == ["a", "b", "c", "a"]  # a fourth use: read again


def test_a_full_cache_loads_a_new_key_at_each_use_and_keeps_the_held_ones():
    loaded: list[str] = []
    reads = SharedReads(["a", "b", "a", "b"], lambda key: loaded.append(key) or key, capacity=1)
    for key in ["a", "b", "a", "b"]:
        reads.get(key)
    assert loaded == ["a", "b", "b"]
    nothing_held = SharedReads(["a", "a"], lambda key: loaded.append(key) or key, capacity=0)
    loaded.clear()
    nothing_held.get("a"), nothing_held.get("a")
    assert loaded == ["a", "a"]


def test_a_failed_load_raises_to_every_use_it_answers():
    calls = []

    def load(key: str) -> str:
        calls.append(key)
        raise KeyNotFoundError(f"{key} is missing")

    reads = SharedReads(["gone", "gone"], load, 4)
    for _ in range(2):
        with pytest.raises(KeyNotFoundError, match="gone is missing"):
            reads.get("gone")
    assert calls == ["gone"]


def test_concurrent_uses_of_one_key_share_one_load():
    loaded: list[str] = []
    reads = SharedReads(["k"] * 16, lambda key: loaded.append(key) or key, 4)
    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(reads.get, ["k"] * 16)) == ["k"] * 16
    assert loaded == ["k"]


# --- the loader ---------------------------------------------------------------------------------


def test_the_loader_reads_each_recording_once_per_epoch_by_default(dataset_root):
    storage = CountingStorage(dataset_root)
    index = scan_dataset(storage, "")
    samples = pair_samples(index, "train", 0)
    loader = build_split_loader(storage, index, "train", 4, shuffle=True, samples=samples)
    assert loader.dataset.recording_cache == RECORDING_CACHE > 0
    assert sum(len(batch["labels"]) for batch in loader) == len(samples)
    recordings = {s.audio_key for s in samples}
    assert len(samples) == FRAMES_PER_CLIP * len(recordings)  # every recording is shared
    assert _audio_reads(storage) == Counter(dict.fromkeys(recordings, 1))
    assert all(storage.reads[s.image_key] == 1 for s in samples)


def test_shared_recordings_give_the_same_samples_as_one_read_each(dataset_root):
    index = scan_dataset(LocalStorage(dataset_root), "")
    samples = pair_samples(index, "train", 0)
    batches = {}
    for cache in (0, RECORDING_CACHE):
        storage = CountingStorage(dataset_root)
        dataset = StreamingPairDataset(
            storage, samples, shuffle=True, seed=1, prefetch=4, recording_cache=cache
        )
        items = list(dataset)
        batches[cache] = {s.image_key: s for s in items}
        expected = 1 if cache else FRAMES_PER_CLIP
        assert set(_audio_reads(storage).values()) == {expected}
    assert batches[0].keys() == batches[RECORDING_CACHE].keys()
    for key, alone in batches[0].items():
        shared = batches[RECORDING_CACHE][key]
        assert shared.audio_key == alone.audio_key
        assert torch.equal(shared.wave, alone.wave) and torch.equal(shared.faces, alone.faces)


def test_a_missing_recording_skips_every_frame_paired_with_it(dataset_root):
    storage = CountingStorage(dataset_root)
    index = scan_dataset(storage, "")
    samples = pair_samples(index, "train", 0)
    gone = samples[0].audio_key
    (dataset_root / gone).rename(dataset_root / f"{gone}.moved")
    try:
        items = list(StreamingPairDataset(storage, samples, prefetch=4))
    finally:
        (dataset_root / f"{gone}.moved").rename(dataset_root / gone)
    skipped = [item for item in items if isinstance(item, streaming.SkippedSample)]
    assert sorted(s.key for s in skipped) == [gone] * FRAMES_PER_CLIP
    assert all("KeyNotFoundError" in s.reason for s in skipped)
    assert storage.reads[gone] == 1


# --- S3 clients ---------------------------------------------------------------------------------


def test_the_crt_client_is_made_once_per_process_and_again_for_new_credentials(
    s3_bucket, monkeypatch
):
    storage = open_storage(s3_bucket.uri("data/"), endpoint_url=s3_bucket.endpoint_url)
    storage.write_bytes("a.bin", b"payload")
    first = streaming._connector_client(s3_bucket.endpoint_url)
    assert make_reader(storage, "s3torchconnector")("a.bin") == b"payload"
    assert make_reader(storage, "s3torchconnector")("a.bin") == b"payload"
    assert streaming._connector_client(s3_bucket.endpoint_url) is first
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "another-key")
    assert streaming._connector_client(s3_bucket.endpoint_url) is not first


def test_the_boto3_client_is_made_once_when_many_threads_read_first(s3_bucket, monkeypatch):
    writer = open_storage(s3_bucket.uri(), endpoint_url=s3_bucket.endpoint_url)
    writer.write_bytes("a.bin", b"payload")
    made = []
    make_client = storage_module._make_client

    def counting(*args):
        made.append(args)
        return make_client(*args)

    monkeypatch.setattr(storage_module, "_make_client", counting)
    storage = S3Storage(s3_bucket.name, endpoint_url=s3_bucket.endpoint_url)
    with ThreadPoolExecutor(16) as pool:
        assert set(pool.map(storage.read_bytes, ["a.bin"] * 32)) == {b"payload"}
    assert len(made) == 1
