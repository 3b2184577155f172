#!/usr/bin/env python3
"""Run the whole S3 training path on one laptop: a local S3 server with a synthetic dataset.

Starts moto's S3 server on loopback, creates a bucket, fills ``s3://BUCKET/dataset/`` with the
synthetic audio-visual dataset (`mmdeepfake-synth`), prints the environment and the
`mmdeepfake-train` command to use it, and keeps serving until Ctrl-C. The server keeps
everything in memory: stopping it deletes the bucket.

    python scripts/local_s3.py --clips 60 --port 5000
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time

FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument("--bucket", default="mmdeepfake-local")
    parser.add_argument("--prefix", default="dataset/")
    parser.add_argument("--clips", type=int, default=60, help="clips per split and label")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variant", choices=("consistency", "mixed"), default="consistency")
    parser.add_argument(
        "--no-wait",
        action="store_true",
        help="fill the bucket, print the commands and stop the server",
    )
    args = parser.parse_args()

    from moto.server import ThreadedMotoServer

    os.environ.update(FAKE_CREDENTIALS)
    endpoint = f"http://127.0.0.1:{args.port}"
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=args.port, verbose=False)
    server.start()
    try:
        import boto3

        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(
            Bucket=args.bucket
        )
        synth = shutil.which("mmdeepfake-synth")
        command = ([synth] if synth else [sys.executable, "-m", "mmdeepfake.cli.synth"]) + [
            "--out",
            f"s3://{args.bucket}/{args.prefix}",
            "--clips",
            str(args.clips),
            "--seed",
            str(args.seed),
            "--variant",
            args.variant,
        ]
        print("filling the bucket:", " ".join(command), flush=True)
        env = dict(os.environ, AWS_ENDPOINT_URL_S3=endpoint)
        subprocess.run(command, check=True, env=env)
        exports = " ".join(f"{k}={v}" for k, v in FAKE_CREDENTIALS.items())
        print(
            f"""
local S3 server: {endpoint}  (bucket {args.bucket}, dataset under {args.prefix})

In another shell:
  export {exports}
  mmdeepfake-train --bucket {args.bucket} --prefix {args.prefix} --endpoint-url {endpoint} \\
      --config tiny --epochs 2
  # artifacts: s3://{args.bucket}/outputs/<run_id>/  e.g.
  aws --endpoint-url {endpoint} s3 ls --recursive s3://{args.bucket}/outputs/
""",
            flush=True,
        )
        if not args.no_wait:
            print("serving; press Ctrl-C to stop (the data is kept in memory only)", flush=True)
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
