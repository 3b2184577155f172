"""Where runs, evaluations and sweeps write their files.

Training runs, evaluations and sweeps share one root so a bucket's outputs stay together:
``s3://BUCKET/outputs/<run_id>/``, ``.../evaluations/...`` and ``.../sweeps/...``.
"""

from __future__ import annotations


def output_root(output: str | None, bucket: str | None) -> str:
    """``output`` when given, else ``s3://BUCKET/outputs`` with a bucket, else ``outputs``
    (a folder in the working directory)."""
    if output:
        return str(output)
    return f"s3://{bucket}/outputs" if bucket else "outputs"
