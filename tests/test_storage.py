"""Storage on a local folder and on a real S3 API (moto server), and its error messages."""

from __future__ import annotations

import logging
import pickle
import socket

import pytest

from mmdeepfake.data import streaming
from mmdeepfake.data.storage import (
    KeyNotFoundError,
    LocalStorage,
    S3Storage,
    open_storage,
    parse_uri,
)
from mmdeepfake.data.streaming import make_reader
from mmdeepfake.errors import (
    BucketNotFoundError,
    ConfigError,
    CredentialsError,
    MediaTooLargeError,
    StorageError,
)
from mmdeepfake.media import limits


def _round_trip(storage) -> None:
    storage.ensure_bucket()
    storage.write_bytes("frames/train/real/a_00.png", b"\x89PNG-a")
    storage.write_bytes("frames/train/real/a_01.png", b"\x89PNG-b")
    storage.write_text("labels/emotions.csv", "key,emotion\na,happy\n")
    assert storage.list() == [
        "frames/train/real/a_00.png",
        "frames/train/real/a_01.png",
        "labels/emotions.csv",
    ]
    assert storage.list("frames/train/real/a_0") == [
        "frames/train/real/a_00.png",
        "frames/train/real/a_01.png",
    ]
    assert storage.list("frames/test/") == []
    assert storage.read_bytes("frames/train/real/a_01.png") == b"\x89PNG-b"
    assert storage.read_text("labels/emotions.csv").startswith("key,emotion")
    with storage.open_stream("frames/train/real/a_00.png") as stream:
        assert stream.read(4) == b"\x89PNG"
        assert stream.read() == b"-a"
    assert storage.exists("labels/emotions.csv")
    assert not storage.exists("labels/missing.csv")
    with pytest.raises(KeyNotFoundError, match="missing.csv"):
        storage.read_bytes("labels/missing.csv")
    storage.write_bytes("labels/emotions.csv", b"replaced")
    assert storage.read_bytes("labels/emotions.csv") == b"replaced"
    storage.delete("labels/emotions.csv")
    assert not storage.exists("labels/emotions.csv")


def test_local_round_trip(tmp_path):
    storage = open_storage(tmp_path / "data")
    assert isinstance(storage, LocalStorage)
    _round_trip(storage)
    assert storage.uri("x/y.png") == str(tmp_path / "data" / "x" / "y.png")
    with pytest.raises(StorageError, match="leaves the storage root"):
        storage.read_bytes("../escape")


@pytest.mark.slow
def test_s3_round_trip_with_prefix(s3_bucket):
    storage = open_storage(s3_bucket.uri("dataset"), endpoint_url=s3_bucket.endpoint_url)
    assert isinstance(storage, S3Storage) and storage.prefix == "dataset/"
    _round_trip(storage)
    assert s3_bucket.keys() == [
        "dataset/frames/train/real/a_00.png",
        "dataset/frames/train/real/a_01.png",
    ]
    assert storage.uri("x.png") == f"s3://{s3_bucket.name}/dataset/x.png"
    # The storage travels to DataLoader workers: it must pickle without its client.
    clone = pickle.loads(pickle.dumps(storage))
    assert clone.read_bytes("frames/train/real/a_00.png") == b"\x89PNG-a"


@pytest.mark.slow
def test_s3_list_paginates(s3_bucket, monkeypatch):
    # The moto server runs in this process and reads its page size per request: 4 keys a
    # page stands in for S3's 1000, so 11 keys take three list_objects_v2 calls.
    monkeypatch.setenv("MOTO_S3_DEFAULT_MAX_KEYS", "4")
    client = s3_bucket.server.client()
    for i in range(11):
        client.put_object(Bucket=s3_bucket.name, Key=f"p/k{i:02d}", Body=b"")
    assert client.list_objects_v2(Bucket=s3_bucket.name)["KeyCount"] == 4
    storage = open_storage(s3_bucket.uri("p/"), endpoint_url=s3_bucket.endpoint_url)
    assert storage.list() == [f"k{i:02d}" for i in range(11)]


def test_ensure_bucket_creates_missing_bucket(s3_server):
    storage = open_storage("s3://fresh-outputs/outputs/", endpoint_url=s3_server.endpoint_url)
    storage.ensure_bucket()
    storage.ensure_bucket()  # idempotent
    storage.write_text("run/log.txt", "ok")
    assert (
        s3_server.client()
        .get_object(Bucket="fresh-outputs", Key="outputs/run/log.txt")["Body"]
        .read()
        == b"ok"
    )


def test_missing_bucket_is_a_clear_error(s3_server):
    storage = open_storage("s3://no-such-bucket/dataset/", endpoint_url=s3_server.endpoint_url)
    with pytest.raises(BucketNotFoundError) as info:
        storage.list()
    message = str(info.value)
    assert "no-such-bucket does not exist or is not visible" in message
    assert "--bucket" in message
    with pytest.raises(BucketNotFoundError):
        storage.read_bytes("frames/x.png")


@pytest.mark.slow
def test_refused_credentials_are_a_clear_error(s3_bucket, monkeypatch):
    # The server really checks credentials here: moto's IAM auth is switched on, so the
    # fake key "testing" is unknown to it (InvalidAccessKeyId) and a real IAM key with a
    # wrong secret fails the signature check (SignatureDoesNotMatch).
    import boto3

    iam = boto3.client("iam", endpoint_url=s3_bucket.endpoint_url, region_name="us-east-1")
    iam.create_user(UserName="reader")
    key = iam.create_access_key(UserName="reader")["AccessKey"]
    storage = open_storage(s3_bucket.uri(), endpoint_url=s3_bucket.endpoint_url, max_attempts=1)
    with s3_bucket.server.enforce_credentials():
        with pytest.raises(CredentialsError, match="InvalidAccessKeyId") as info:
            storage.list()
        assert "AWS_ACCESS_KEY_ID" in str(info.value)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret")
        monkeypatch.delenv("AWS_SESSION_TOKEN")
        monkeypatch.delenv("AWS_SECURITY_TOKEN")
        fresh = open_storage(s3_bucket.uri(), endpoint_url=s3_bucket.endpoint_url, max_attempts=1)
        with pytest.raises(CredentialsError, match="SignatureDoesNotMatch"):
            fresh.read_bytes("anything")


@pytest.mark.slow
def test_missing_credentials_are_a_clear_error(s3_server, monkeypatch):
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_SECURITY_TOKEN",
    ):
        monkeypatch.delenv(name)
    # No instance-metadata lookups (they would wait on a network that is not there).
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    storage = open_storage("s3://any/", endpoint_url=s3_server.endpoint_url)
    with pytest.raises(CredentialsError, match="no AWS credentials found"):
        storage.list()


def test_unreachable_endpoint_is_a_storage_error(s3_server):
    # A loopback port nobody listens on: the connection is refused at once.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    storage = open_storage("s3://b/", endpoint_url=f"http://127.0.0.1:{port}", max_attempts=2)
    with pytest.raises(StorageError, match=f"cannot reach http://127.0.0.1:{port}") as info:
        storage.read_bytes("x")
    assert "--endpoint-url" in str(info.value)


def test_parse_uri_and_open_storage_errors():
    assert parse_uri("s3://b") == ("b", "")
    assert parse_uri("s3://b/a/b") == ("b", "a/b/")
    assert parse_uri("s3://b/a/") == ("b", "a/")
    with pytest.raises(StorageError, match="no bucket name"):
        parse_uri("s3:///x")
    with pytest.raises(StorageError, match="not an S3 URI"):
        parse_uri("/tmp/x")
    with pytest.raises(StorageError, match="unsupported storage address"):
        open_storage("gs://bucket/x")


@pytest.mark.slow
def test_s3_large_writes_use_multipart(s3_bucket, monkeypatch):
    import mmdeepfake.data.storage as storage_module

    monkeypatch.setattr(storage_module, "MULTIPART_THRESHOLD", 1024)
    storage = open_storage(s3_bucket.uri(), endpoint_url=s3_bucket.endpoint_url)
    data = bytes(range(256)) * 40
    storage.write_bytes("big.bin", data)
    head = s3_bucket.server.client().head_object(Bucket=s3_bucket.name, Key="big.bin")
    assert "-" in head["ETag"]  # multipart ETags end in -<parts>
    assert storage.read_bytes("big.bin") == data


# --- readers used by training (boto3, and the CRT client of s3torchconnector) ----------------


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["boto3", "s3torchconnector", "auto"])
def test_readers_read_objects_and_raise_typed_errors(s3_bucket, backend):
    storage = open_storage(s3_bucket.uri("data/"), endpoint_url=s3_bucket.endpoint_url)
    storage.write_bytes("clips/a.bin", b"payload")
    read = make_reader(storage, backend)
    assert read("clips/a.bin") == b"payload"
    with pytest.raises(KeyNotFoundError, match="data/clips/missing.bin does not exist"):
        read("clips/missing.bin")
    missing_bucket = open_storage("s3://no-such-bucket/", endpoint_url=s3_bucket.endpoint_url)
    with pytest.raises(BucketNotFoundError, match="no-such-bucket does not exist"):
        make_reader(missing_bucket, backend)("clips/a.bin")


def test_crt_reader_reports_refused_credentials(s3_bucket):
    storage = open_storage(s3_bucket.uri(), endpoint_url=s3_bucket.endpoint_url)
    storage.write_bytes("a.bin", b"payload")
    read = make_reader(storage, "s3torchconnector")
    refused = pytest.raises(CredentialsError, match="AWS_ACCESS_KEY_ID")
    with s3_bucket.server.enforce_credentials(), refused:
        read("a.bin")


def test_auto_reader_prefers_the_crt_client_and_falls_back_to_boto3(
    s3_bucket, tmp_path, monkeypatch
):
    s3 = open_storage(s3_bucket.uri(), endpoint_url=s3_bucket.endpoint_url)
    local = open_storage(str(tmp_path))
    assert make_reader(s3, "auto") != s3.read_bytes  # s3torchconnector is in the train extra
    assert make_reader(local, "auto") == local.read_bytes
    monkeypatch.setattr(streaming, "_connector_installed", lambda: False)
    assert make_reader(s3, "auto") == s3.read_bytes
    with pytest.raises(ConfigError, match="s3_reader must be one of"):
        make_reader(s3, "curl")


# --- hostile keys and sizes ---------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["boto3", "s3torchconnector"])
def test_objects_over_the_size_cap_are_refused(s3_bucket, tmp_path, monkeypatch, backend):
    storage = S3Storage(s3_bucket.name, "data/", endpoint_url=s3_bucket.endpoint_url)
    storage.write_bytes("big.wav", b"x" * 5000)
    storage.write_bytes("small.wav", b"x" * 500)
    monkeypatch.setattr(limits, "MAX_FILE_BYTES", 1000)
    read = make_reader(storage, backend)
    with pytest.raises(MediaTooLargeError, match="was not downloaded"):
        read("big.wav")
    assert read("small.wav") == b"x" * 500
    assert storage.read_bytes("big.wav", max_bytes=10_000) == b"x" * 5000
    local = LocalStorage(tmp_path)
    local.write_bytes("big.wav", b"x" * 5000)
    with pytest.raises(MediaTooLargeError):
        local.read_bytes("big.wav")


def test_listing_skips_keys_with_dotdot(s3_bucket, caplog):
    client = s3_bucket.server.client()
    for key in ("in/a.mp4", "in/x/../../escape.mp4", "in/b.mp4"):
        client.put_object(Bucket=s3_bucket.name, Key=key, Body=b"v")
    storage = open_storage(s3_bucket.uri("in/"), endpoint_url=s3_bucket.endpoint_url)
    with caplog.at_level(logging.WARNING, logger="mmdeepfake.data"):
        assert storage.list() == ["a.mp4", "b.mp4"]
    assert "in/x/../../escape.mp4" in caplog.text


@pytest.mark.slow
def test_uri_naming_one_object_lists_that_object(s3_bucket):
    client = s3_bucket.server.client()
    client.put_object(Bucket=s3_bucket.name, Key="in/clips/a.mp4", Body=b"v")
    client.put_object(Bucket=s3_bucket.name, Key="in/clips/a.mp4.bak", Body=b"w")
    storage = open_storage(s3_bucket.uri("in/clips/a.mp4"), endpoint_url=s3_bucket.endpoint_url)
    assert storage.list() == ["a.mp4"]
    assert storage.uri("a.mp4") == s3_bucket.uri("in/clips/a.mp4")
    assert storage.read_bytes("a.mp4") == b"v"
    top = open_storage(s3_bucket.uri("top.mp4"), endpoint_url=s3_bucket.endpoint_url)
    client.put_object(Bucket=s3_bucket.name, Key="top.mp4", Body=b"t")
    assert top.list() == ["top.mp4"] and top.uri("top.mp4") == s3_bucket.uri("top.mp4")
    missing = open_storage(s3_bucket.uri("in/none.mp4"), endpoint_url=s3_bucket.endpoint_url)
    assert missing.list() == []
