"""Shared fixtures. The Hugging Face Hub is unreachable in tests: everything is built offline."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


# --- a real S3 API on loopback (moto server mode) ----------------------------------------------
#
# `s3_server` (session): starts moto's S3 server in a thread on 127.0.0.1 and a free port and
# sets fake credentials (AWS_ACCESS_KEY_ID=testing, region us-east-1) in os.environ for the
# whole session, so boto3 in this process AND in subprocesses (CLI runs, torchrun ranks) talks
# to it when given `endpoint_url`. `s3_bucket` (function): a fresh, empty bucket per test,
# removed afterwards. Typical use:
#
#     def test_x(s3_bucket):
#         storage = open_storage(s3_bucket.uri("dataset/"), endpoint_url=s3_bucket.endpoint_url)
#
# `s3_server.enforce_credentials()` is a context manager that makes the server check
# credentials like AWS does (moto's IAM auth switch): inside it, keys that moto's IAM does not
# know are refused with InvalidAccessKeyId, a wrong secret with SignatureDoesNotMatch.

import contextlib
import dataclasses
import socket
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

# --- no silent skips under CI -------------------------------------------------------------------
#
# A test that skips because a dependency, the browser or the bundled model is missing passes
# quietly on a developer's machine. CI installs all of them, so there a skip means something is
# broken: with the CI environment variable set, every skip (in a test or at module import)
# becomes a failure that says why it would have skipped.


def _ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _fail_instead_of_skip(report: Any) -> None:
    if report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped under CI, which must run every test: {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: Any, call: Any) -> Iterator[None]:
    outcome = yield
    if _ci():
        _fail_instead_of_skip(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: Any) -> Iterator[None]:
    outcome = yield
    if _ci():
        _fail_instead_of_skip(outcome.get_result())


FAKE_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    # Never read a developer's real ~/.aws files during tests.
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}


@dataclasses.dataclass
class S3Server:
    """A running moto S3 server: ``endpoint_url`` is what boto3/mmdeepfake need."""

    endpoint_url: str
    host: str
    port: int

    def client(self, **kwargs: Any) -> Any:
        """A boto3 S3 client for this server (path-style addressing)."""
        import boto3
        from botocore.config import Config

        kwargs.setdefault("config", Config(s3={"addressing_style": "path"}))
        return boto3.client("s3", endpoint_url=self.endpoint_url, region_name="us-east-1", **kwargs)

    @contextlib.contextmanager
    def enforce_credentials(self) -> Iterator[None]:
        """Make the server authenticate every request until the block ends (moto IAM auth)."""
        import urllib.request

        def set_count(value: str) -> None:
            request = urllib.request.Request(
                f"{self.endpoint_url}/moto-api/reset-auth",
                data=value.encode(),
                method="POST",
                headers={"Content-Type": "text/plain"},  # a form type would hide the body
            )
            urllib.request.urlopen(request, timeout=10).close()

        set_count("0")
        try:
            yield
        finally:
            set_count("inf")


@dataclasses.dataclass
class S3Bucket:
    """An empty bucket on the test S3 server."""

    name: str
    endpoint_url: str
    server: S3Server

    def uri(self, key: str = "") -> str:
        """``s3://name/key``."""
        return f"s3://{self.name}/{key}"

    def keys(self, prefix: str = "") -> list[str]:
        """Every object key in the bucket under ``prefix``, sorted."""
        paginator = self.server.client().get_paginator("list_objects_v2")
        return sorted(
            item["Key"]
            for page in paginator.paginate(Bucket=self.name, Prefix=prefix)
            for item in page.get("Contents", ())
        )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """moto's S3 server on loopback for the whole session, with fake credentials in the env."""
    from moto.server import ThreadedMotoServer

    with pytest.MonkeyPatch.context() as patch:
        for name, value in FAKE_AWS_ENV.items():
            patch.setenv(name, value)
        for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
            patch.delenv(name, raising=False)
        port = _free_port()
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        server.start()
        try:
            yield S3Server(endpoint_url=f"http://127.0.0.1:{port}", host="127.0.0.1", port=port)
        finally:
            server.stop()


@pytest.fixture()
def s3_bucket(s3_server: S3Server) -> Iterator[S3Bucket]:
    """A fresh empty bucket for one test; it and its objects are deleted afterwards."""
    name = f"test-{uuid.uuid4().hex[:12]}"
    client = s3_server.client()
    client.create_bucket(Bucket=name)
    yield S3Bucket(name=name, endpoint_url=s3_server.endpoint_url, server=s3_server)
    with contextlib.suppress(client.exceptions.NoSuchBucket):  # the test may have removed it
        leftovers = S3Bucket(name, s3_server.endpoint_url, s3_server).keys()
        for key in leftovers:
            client.delete_object(Bucket=name, Key=key)
        client.delete_bucket(Bucket=name)
