"""Connecting to Ray: the optional import, the cluster, and S3 as Ray's writers see it."""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlparse

from mmdeepfake.errors import ConfigError

INSTALL_HINT = 'pip install "mmdeepfake[scale]"'


def require_ray() -> Any:
    """Import Ray, or say how to install it.

    Raises:
        ConfigError: Ray (with Ray Data) is not installed.
    """
    try:
        import ray
        import ray.data  # Ray Data is a separate part of the ray package
    except ImportError as exc:
        raise ConfigError(
            f"--engine ray needs Ray Data, which is not installed ({exc}); install it with "
            f"`{INSTALL_HINT}`"
        ) from None
    return ray


def connect(address: str | None = None, *, num_cpus: int | None = None) -> Any:
    """Join the Ray cluster at ``address``, or start a local Ray instance when it is None.

    ``address`` is what ``ray.init`` reads: ``auto`` (a cluster already running on this
    machine, as ``ray up`` or KubeRay leave it), or ``ray://HOST:10001`` (Ray Client). A local
    instance uses ``num_cpus`` cores (default: all of them). A connection already made in this
    process is reused.

    Raises:
        ConfigError: Ray is missing, or no cluster answers at ``address``.
    """
    ray = require_ray()
    if ray.is_initialized():
        return ray
    options: dict[str, Any] = {
        "include_dashboard": False,
        "log_to_driver": False,
        "configure_logging": False,
    }
    try:
        if address is None:
            ray.init(num_cpus=num_cpus, **options)
        else:
            ray.init(address=address, **options)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = "a local Ray instance" if address is None else f"the Ray cluster at {address}"
        raise ConfigError(f"cannot connect to {where}: {exc}") from None
    return ray


def filesystem(uri: str, endpoint_url: str | None = None) -> tuple[Any, str]:
    """The pyarrow filesystem that holds ``uri`` and the path within it.

    An ``s3://bucket/prefix`` gives an S3 filesystem (at ``endpoint_url`` when given: MinIO, a
    local S3 server; credentials from the environment, as boto3 reads them) and
    ``bucket/prefix``; anything else is a local path, made absolute. Ray Data's readers and
    writers take the pair as ``(path, filesystem=...)``.
    """
    from pyarrow import fs

    if not uri.startswith("s3://"):
        return fs.LocalFileSystem(), os.path.abspath(uri)
    path = uri[len("s3://") :].rstrip("/")
    if endpoint_url is None:
        return fs.S3FileSystem(), path
    parsed = urlparse(endpoint_url)
    return fs.S3FileSystem(
        endpoint_override=parsed.netloc or parsed.path, scheme=parsed.scheme or "https"
    ), path
