#!/usr/bin/env python3
"""How fast ``mmdeepfake prepare`` turns videos into the training layout: clips per second.

Writes a ``folders`` dataset of synthetic talking-face clips (the Grace Hopper photo over a
moving background, with a voice-like track), then prepares it with 1 and with ``--workers N``
processes, from a local folder to a local folder and from a local S3 server (moto, in its own
process like a real endpoint) to the same server; and times a finished run re-run (resume).
With ``--engine ray`` it also prepares the same dataset on a local Ray instance of ``--workers``
CPUs (one clip per CPU at a time), folder to folder and S3 to S3, and gives
``ray_over_local``: the Ray engine's clips/s over the local engine's with the same number of
workers. Ray's start-up (``ray_start_s``) is timed on its own, once per run, as a cluster pays
it once per job. The last line is JSON with every figure.

    python scripts/bench_prepare.py --clips 16 --workers 2 [--engine ray]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from _s3_server import start_s3


def make_dataset(root: Path, clips: int, seconds: float) -> None:
    """``clips`` videos, half real and half fake, each in a person folder."""
    from mmdeepfake.testing.media import face_video

    for i in range(clips):
        label = "real" if i % 2 == 0 else "fake"
        path = root / label / f"id{i // 2:03d}" / f"clip_{i}.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        face_video(path, seconds=seconds, size=(640, 360))


def timed(
    src: str, dest: str, workers: int, frames: int, endpoint: str | None, engine: str = "local"
) -> dict:
    from mmdeepfake.prepare.engine import prepare_dataset

    runner = None
    if engine == "ray":
        from mmdeepfake.scale.preparing import RayRunner

        runner = RayRunner(workers=workers)
    started = time.perf_counter()
    summary = prepare_dataset(
        src,
        dest,
        "folders",
        endpoint_url=endpoint,
        workers=1 if runner else workers,
        frames_per_clip=frames,
        progress=False,
        runner=runner,
    )
    seconds = time.perf_counter() - started
    done = summary.written + sum(summary.skipped.values())
    return {
        "clips": done,
        "seconds": round(seconds, 2),
        "clips_per_s": round(done / seconds, 2) if done else None,
        "already_done": summary.already_done,
    }


def time_ray(root: Path, workers: int, frames: int, endpoint: str) -> dict:
    """The Ray engine on a local instance of ``workers`` CPUs, folder and S3, after its start."""
    import ray

    from mmdeepfake.scale.cluster import connect

    started = time.perf_counter()
    connect(num_cpus=workers)
    results: dict = {"ray_start_s": round(time.perf_counter() - started, 2)}
    try:
        results[f"ray_local_w{workers}"] = timed(
            str(root / "src"), str(root / "out-ray"), workers, frames, None, "ray"
        )
        results[f"ray_s3_w{workers}"] = timed(
            "s3://bench/src/", "s3://bench/out-ray/", workers, frames, endpoint, "ray"
        )
    finally:
        ray.shutdown()
    print(json.dumps(results))
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=16, help="videos in the dataset")
    parser.add_argument("--seconds", type=float, default=2.0, help="length of each video")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2, help="N of the run")
    parser.add_argument("--frames-per-clip", type=int, default=8)
    parser.add_argument(
        "--engine", choices=("local", "ray"), default="local", help="ray: also time the Ray engine"
    )
    args = parser.parse_args()

    import logging

    logging.basicConfig(level=logging.WARNING)
    server, endpoint = start_s3()
    results: dict = {
        "clips": args.clips,
        "seconds_per_clip": args.seconds,
        "frames_per_clip": args.frames_per_clip,
        "workers": args.workers,
        "cpu_count": os.cpu_count(),
    }
    try:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            make_dataset(root / "src", args.clips, args.seconds)
            from mmdeepfake.data.storage import open_storage

            s3_src = open_storage("s3://bench/src/", endpoint_url=endpoint)
            s3_src.ensure_bucket()
            for path in (root / "src").rglob("*.mp4"):
                s3_src.write_bytes(path.relative_to(root / "src").as_posix(), path.read_bytes())
            for workers in sorted({1, args.workers}):
                local_out = str(root / f"out-{workers}")
                results[f"local_w{workers}"] = timed(
                    str(root / "src"), local_out, workers, args.frames_per_clip, None
                )
                results[f"s3_w{workers}"] = timed(
                    "s3://bench/src/",
                    f"s3://bench/out-{workers}/",
                    workers,
                    args.frames_per_clip,
                    endpoint,
                )
                print(json.dumps({k: results[k] for k in (f"local_w{workers}", f"s3_w{workers}")}))
            first = results[f"s3_w{args.workers}"]["seconds"]
            resume = timed(
                "s3://bench/src/",
                f"s3://bench/out-{args.workers}/",
                args.workers,
                args.frames_per_clip,
                endpoint,
            )
            resume["share_of_first_run"] = round(resume["seconds"] / first, 3)
            results["s3_resume"] = resume
            if args.engine == "ray":
                results.update(time_ray(root, args.workers, args.frames_per_clip, endpoint))
                for where in ("local", "s3"):
                    ray_rate = results[f"ray_{where}_w{args.workers}"]["clips_per_s"]
                    local_rate = results[f"{where}_w{args.workers}"]["clips_per_s"]
                    results[f"ray_over_local_{where}"] = round(ray_rate / local_rate, 3)
    finally:
        server.terminate()
        server.wait(timeout=10)
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
