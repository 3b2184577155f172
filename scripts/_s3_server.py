"""A local S3 server in its own process, for the benchmark scripts.

moto's server runs as a separate process on loopback, like a real S3 endpoint: an in-process
server would compete with the code being measured for the GIL and distort the figures. The
environment gets fake credentials and loses any endpoint or profile setting, so boto3 talks to
this server and nothing else.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request

FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}


def start_s3(port: int = 0) -> tuple[subprocess.Popen, str]:
    """Start moto's S3 server on 127.0.0.1 (``port`` 0: a free one) and wait until it answers.

    Returns the process (``terminate()`` it when done) and its endpoint URL.
    """
    os.environ.update(FAKE_CREDENTIALS)
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE"):
        os.environ.pop(name, None)
    if not port:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
    endpoint = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(100):
        try:
            urllib.request.urlopen(endpoint, timeout=1).close()
            break
        except OSError:
            time.sleep(0.2)
    return server, endpoint
