"""One small interface over a local folder and an S3 bucket.

Training, prediction and the synthetic generator read datasets and write artifacts through
:class:`Storage`, so the same code runs on a laptop folder, a local S3 server (moto) and AWS.
Keys are always ``/``-separated and relative to the storage root (a folder, or a bucket plus
prefix). Reads go to memory (``read_bytes``) or stream (``open_stream``); nothing is copied to
local disk. boto3 is imported only when an S3 storage is actually used, so ``import mmdeepfake``
stays light, and every botocore failure a person can fix is turned into a typed
:mod:`mmdeepfake.errors` error whose message says what to do.
"""

from __future__ import annotations

import builtins
import io
import logging
import os
import shutil
import threading
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, BinaryIO

from mmdeepfake.errors import (
    BucketNotFoundError,
    CredentialsError,
    MediaTooLargeError,
    StorageError,
)
from mmdeepfake.media import limits

__all__ = [
    "KeyNotFoundError",
    "LocalStorage",
    "S3Storage",
    "Storage",
    "open_storage",
    "parse_uri",
]

# Objects above this size are uploaded in parts (S3 caps a single PUT at 5 GB, and parts
# can be retried one at a time).
MULTIPART_THRESHOLD = 64 * 1024 * 1024

_CREDENTIAL_CODES = {
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "AccessDenied",
    "ExpiredToken",
    "InvalidToken",
    "TokenRefreshRequired",
    "AuthorizationHeaderMalformed",
    "InvalidClientTokenId",
    "403",
    "Forbidden",
}
_MISSING_KEY_CODES = {"NoSuchKey", "404", "NotFound"}

log = logging.getLogger("mmdeepfake.data")

_CLIENT_LOCK = threading.Lock()


def _new_lock_in_child() -> None:
    """A forked process (a DataLoader worker) must not inherit the lock held by a thread."""
    global _CLIENT_LOCK
    _CLIENT_LOCK = threading.Lock()


os.register_at_fork(after_in_child=_new_lock_in_child)


class KeyNotFoundError(StorageError):
    """A key that does not exist in the storage (a missing file or object)."""


class Storage(ABC):
    """A flat key/value view of a folder or bucket prefix; keys are relative ``a/b/c.png``."""

    @abstractmethod
    def list(self, prefix: str = "") -> list[str]:
        """Every key under ``prefix`` (recursively), sorted, relative to the storage root."""

    @abstractmethod
    def read_bytes(self, key: str, *, max_bytes: int | None = None) -> bytes:
        """The whole content of ``key``, read into memory.

        Objects over `max_bytes` (default ``media.limits.MAX_FILE_BYTES``) raise
        MediaTooLargeError from their size alone, before any of their content is read.
        """

    @abstractmethod
    def open_stream(self, key: str) -> BinaryIO:
        """A readable file-like object streaming ``key``; close it when done."""

    @abstractmethod
    def write_bytes(self, key: str, data: bytes) -> None:
        """Create or replace ``key`` with ``data``."""

    @abstractmethod
    def exists(self, key: str) -> bool:
        """Whether ``key`` exists."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove ``key``; a missing key is not an error."""

    @abstractmethod
    def uri(self, key: str = "") -> str:
        """A user-facing address of ``key`` (a path or an ``s3://`` URI) for messages and logs."""

    @abstractmethod
    def ensure_bucket(self) -> None:
        """Create the root (folder, or bucket) if it does not exist yet."""

    def write_text(self, key: str, text: str) -> None:
        """Write ``text`` UTF-8 encoded."""
        self.write_bytes(key, text.encode("utf-8"))

    def read_text(self, key: str) -> str:
        """Read ``key`` as UTF-8 text."""
        return self.read_bytes(key).decode("utf-8")


def _clean_key(key: str) -> str:
    key = key.replace("\\", "/").lstrip("/")
    if any(part == ".." for part in key.split("/")):
        raise StorageError(f"key {key!r} leaves the storage root; use a path without '..'")
    return key


class LocalStorage(Storage):
    """A folder on local disk; keys map to files below ``root``."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser()

    def __repr__(self) -> str:
        return f"LocalStorage({str(self.root)!r})"

    def _path(self, key: str) -> Path:
        return self.root / _clean_key(key)

    def list(self, prefix: str = "") -> list[str]:
        prefix = _clean_key(prefix)
        if not self.root.is_dir():
            return []
        # Walk only the deepest folder the prefix names, then filter by the rest of it.
        base = self.root / prefix.rsplit("/", 1)[0] if "/" in prefix else self.root
        if not base.is_dir():
            return []
        keys = []
        for dirpath, _dirnames, filenames in os.walk(base):
            for name in filenames:
                key = Path(dirpath, name).relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    keys.append(key)
        return sorted(keys)

    def read_bytes(self, key: str, *, max_bytes: int | None = None) -> bytes:
        path = self._path(key)
        try:
            check_size(str(path), path.stat().st_size, max_bytes)
            return path.read_bytes()
        except FileNotFoundError:
            raise KeyNotFoundError(
                f"{path} does not exist; check the path and the dataset prefix"
            ) from None
        except OSError as exc:
            raise StorageError(f"cannot read {path}: {exc.strerror or exc}") from exc

    def open_stream(self, key: str) -> BinaryIO:
        path = self._path(key)
        try:
            return path.open("rb")
        except FileNotFoundError:
            raise KeyNotFoundError(
                f"{path} does not exist; check the path and the dataset prefix"
            ) from None
        except OSError as exc:
            raise StorageError(f"cannot open {path}: {exc.strerror or exc}") from exc

    def write_bytes(self, key: str, data: bytes) -> None:
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Write then rename, so a crash never leaves a half-written checkpoint behind.
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            tmp.write_bytes(bytes(data))
            os.replace(tmp, path)
        except OSError as exc:
            raise StorageError(
                f"cannot write {path}: {exc.strerror or exc}; check the folder is writable "
                "and the disk has space"
            ) from exc

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        path = self._path(key)
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)

    def uri(self, key: str = "") -> str:
        return str(self._path(key)) if key else str(self.root)

    def ensure_bucket(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create folder {self.root}: {exc.strerror or exc}") from exc


class S3Storage(Storage):
    """Objects under ``s3://bucket/prefix``, read and written with boto3.

    The client retries throttling and transient network errors with adaptive backoff
    (``max_attempts`` tries in total; default ``$AWS_MAX_ATTEMPTS`` or 5). With ``endpoint_url``
    (a local moto server, MinIO, ...) it uses path-style addressing, which such servers expect.
    Credentials come from the usual boto3 chain (environment, ``~/.aws``, instance profile). The
    client is created lazily and again in a forked process (a DataLoader worker), and the storage
    pickles without it.
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        max_attempts: int | None = None,
        region_name: str | None = None,
    ) -> None:
        if not bucket:
            raise StorageError("an S3 URI needs a bucket name, e.g. s3://my-bucket/dataset/")
        self.bucket = bucket
        self.prefix = _normalise_prefix(prefix)
        self.endpoint_url = (
            endpoint_url
            or os.environ.get("AWS_ENDPOINT_URL_S3")
            or os.environ.get("AWS_ENDPOINT_URL")
        )
        self.max_attempts = max_attempts or int(os.environ.get("AWS_MAX_ATTEMPTS", "5"))
        self.region_name = region_name
        self._client: Any = None
        self._client_pid: int | None = None

    def __repr__(self) -> str:
        endpoint = f", endpoint_url={self.endpoint_url!r}" if self.endpoint_url else ""
        return f"S3Storage({self.uri()!r}{endpoint})"

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_client"] = None
        state["_client_pid"] = None
        return state

    @property
    def client(self) -> Any:
        """The boto3 S3 client of this process (boto3 clients must not cross a fork).

        Made once even when the first requests come from many threads at once (a loader's
        prefetch pool): each client costs tens of milliseconds of CPU and its own connections.
        """
        if self._client is None or self._client_pid != os.getpid():
            with _CLIENT_LOCK:
                if self._client is None or self._client_pid != os.getpid():
                    self._client = _make_client(
                        self.endpoint_url, self.max_attempts, self.region_name
                    )
                    self._client_pid = os.getpid()
        return self._client

    def _key(self, key: str) -> str:
        return self.prefix + _clean_key(key)

    def _call(self, what: str, key: str | None, fn: Any, **kwargs: Any) -> Any:
        try:
            return fn(**kwargs)
        except Exception as exc:
            raise _translate(exc, self, what, key) from exc

    def list(self, prefix: str = "") -> list[str]:
        """Keys under ``prefix``, relative to the storage's own prefix.

        A key that no storage could read back (one with a ``..`` part, which S3 allows) is
        skipped with a warning. When the storage's URI names one object rather than a folder
        (``s3://bucket/clips/a.mp4``) and nothing lies under it as a folder, the storage is
        re-rooted at the object's folder and the listing is that one object.
        """
        paginator = self.client.get_paginator("list_objects_v2")
        full = self._key(prefix)
        keys: list[str] = []

        def collect() -> None:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=full):
                for item in page.get("Contents", ()):
                    name = item["Key"]
                    if name.endswith("/"):
                        continue
                    if ".." in name.split("/"):
                        log.warning(
                            "skipping s3://%s/%s: a key with a '..' part cannot be "
                            "read safely; rename the object",
                            self.bucket,
                            name,
                        )
                        continue
                    keys.append(name[len(self.prefix) :])

        self._call("list", prefix, collect)
        if not keys and not prefix and self.prefix:
            return self._single_object()
        return sorted(keys)

    def _single_object(self) -> builtins.list[str]:
        """[name] when the prefix is in fact one object's key (re-rooting at its folder)."""
        key = self.prefix.rstrip("/")
        try:
            self._call("check", key, self.client.head_object, Bucket=self.bucket, Key=key)
        except KeyNotFoundError:
            return []
        folder, _, name = key.rpartition("/")
        self.prefix = folder + "/" if folder else ""
        return [name]

    def read_bytes(self, key: str, *, max_bytes: int | None = None) -> bytes:
        def fetch() -> bytes:
            response = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
            body = response["Body"]
            try:
                # The size comes with the response headers: the body is not read when too large.
                check_size(self.uri(key), int(response.get("ContentLength", 0)), max_bytes)
                return body.read()
            finally:
                body.close()

        return self._call("read", key, fetch)

    def open_stream(self, key: str) -> BinaryIO:
        response = self._call(
            "read", key, self.client.get_object, Bucket=self.bucket, Key=self._key(key)
        )
        return response["Body"]

    def write_bytes(self, key: str, data: bytes) -> None:
        if len(data) < MULTIPART_THRESHOLD:
            self._call(
                "write",
                key,
                self.client.put_object,
                Bucket=self.bucket,
                Key=self._key(key),
                Body=bytes(data),
            )
            return
        from boto3.s3.transfer import TransferConfig

        config = TransferConfig(multipart_threshold=MULTIPART_THRESHOLD, use_threads=True)
        self._call(
            "write",
            key,
            self.client.upload_fileobj,
            Fileobj=io.BytesIO(data),
            Bucket=self.bucket,
            Key=self._key(key),
            Config=config,
        )

    def exists(self, key: str) -> bool:
        try:
            self._call(
                "check", key, self.client.head_object, Bucket=self.bucket, Key=self._key(key)
            )
        except KeyNotFoundError:
            return False
        return True

    def delete(self, key: str) -> None:
        self._call("delete", key, self.client.delete_object, Bucket=self.bucket, Key=self._key(key))

    def uri(self, key: str = "") -> str:
        return f"s3://{self.bucket}/{self._key(key)}"

    def ensure_bucket(self) -> None:
        """Create the bucket if it is missing (the prefix needs nothing: S3 has no folders)."""
        try:
            self._call("check", None, self.client.head_bucket, Bucket=self.bucket)
            return
        except BucketNotFoundError:
            pass
        kwargs: dict[str, Any] = {"Bucket": self.bucket}
        region = self.client.meta.region_name
        if region and region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
        try:
            self.client.create_bucket(**kwargs)
        except Exception as exc:
            if _error_code(exc) != "BucketAlreadyOwnedByYou":
                raise _translate(exc, self, "create bucket", None) from exc


def check_size(where: str, size: int, max_bytes: int | None = None) -> None:
    """MediaTooLargeError when an object of `size` bytes is over `max_bytes`."""
    limit = limits.MAX_FILE_BYTES if max_bytes is None else int(max_bytes)
    if size > limit:
        raise MediaTooLargeError(
            f"{where} is {size / 1024**2:,.1f} MB, over the {limit / 1024**2:,.0f} MB limit; it "
            "was not downloaded. Trim or re-encode it, or raise "
            "mmdeepfake.media.limits.MAX_FILE_BYTES if you need it whole."
        )


def _normalise_prefix(prefix: str) -> str:
    prefix = _clean_key(prefix)
    return prefix if not prefix or prefix.endswith("/") else prefix + "/"


def _make_client(endpoint_url: str | None, max_attempts: int, region_name: str | None) -> Any:
    import boto3
    from botocore.config import Config

    config = Config(
        retries={"max_attempts": max_attempts, "mode": "adaptive"},
        connect_timeout=5,
        read_timeout=60,
        max_pool_connections=32,
        s3={"addressing_style": "path"} if endpoint_url else None,
    )
    region = region_name or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    return boto3.session.Session().client(
        "s3", endpoint_url=endpoint_url, config=config, region_name=region or None
    )


def _error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    return str(response.get("Error", {}).get("Code", "")) if isinstance(response, dict) else ""


def _translate(exc: Exception, storage: S3Storage, what: str, key: str | None) -> Exception:
    """Map a boto3/botocore exception to the typed error a person can act on."""
    from botocore import exceptions as bce

    where = storage.uri(key) if key is not None else f"s3://{storage.bucket}"
    if isinstance(exc, (bce.NoCredentialsError, bce.PartialCredentialsError)):
        return CredentialsError(
            f"no AWS credentials found to {what} {where}; set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, run `aws configure`, or attach an instance profile"
        )
    if isinstance(exc, (bce.EndpointConnectionError, bce.ConnectTimeoutError)):
        endpoint = storage.endpoint_url or "the AWS S3 endpoint"
        return StorageError(
            f"cannot reach {endpoint} to {what} {where}; check --endpoint-url, that the S3 "
            "server is running, and the network"
        )
    if isinstance(exc, (bce.ReadTimeoutError, bce.ConnectionClosedError)):
        return StorageError(
            f"the connection to S3 broke while trying to {what} {where} (retried "
            f"{storage.max_attempts} times); check the network and try again"
        )
    if isinstance(exc, bce.ClientError):
        code = _error_code(exc)
        message = exc.response.get("Error", {}).get("Message") or code
        if code == "NoSuchBucket" or (code in {"404", "NotFound"} and key is None):
            return BucketNotFoundError(
                f"bucket {storage.bucket} does not exist or is not visible to these "
                "credentials; create it or check --bucket"
            )
        if code in _CREDENTIAL_CODES:
            return CredentialsError(
                f"S3 refused the credentials to {what} {where} ({code}: {message}); check "
                "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (or the profile) and that they are "
                f"allowed to access bucket {storage.bucket}"
            )
        if code in _MISSING_KEY_CODES:
            return KeyNotFoundError(f"{where} does not exist; check the key and the prefix")
        return StorageError(f"S3 could not {what} {where}: {code}: {message}")
    if isinstance(exc, bce.BotoCoreError):
        return StorageError(f"S3 could not {what} {where}: {exc}")
    return exc


def parse_uri(uri: str) -> tuple[str, str]:
    """Split ``s3://bucket/some/prefix`` into ``("bucket", "some/prefix/")``."""
    if not uri.startswith("s3://"):
        raise StorageError(f"{uri!r} is not an S3 URI; write it as s3://BUCKET/PREFIX")
    bucket, _, prefix = uri[len("s3://") :].partition("/")
    if not bucket:
        raise StorageError(f"{uri!r} has no bucket name; write it as s3://BUCKET/PREFIX")
    return bucket, _normalise_prefix(prefix)


def open_storage(
    uri_or_path: str | os.PathLike[str],
    *,
    endpoint_url: str | None = None,
    max_attempts: int | None = None,
) -> Storage:
    """A :class:`Storage` for an ``s3://bucket/prefix`` URI or a local folder path."""
    text = os.fspath(uri_or_path)
    if text.startswith("s3://"):
        bucket, prefix = parse_uri(text)
        return S3Storage(bucket, prefix, endpoint_url=endpoint_url, max_attempts=max_attempts)
    scheme, sep, _ = text.partition("://")
    if sep and scheme.isalnum():
        raise StorageError(
            f"unsupported storage address {text!r}; use a local folder or s3://BUCKET/PREFIX"
        )
    return LocalStorage(text)
