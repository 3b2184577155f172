#!/usr/bin/env python3
"""Training throughput: the same synthetic data from a local S3 server and from local disk.

In one run: generates a synthetic dataset, writes it to a temporary folder and to a bucket on a
moto S3 server this script starts on loopback as a separate process (and stops at the end),
then measures

* ``loader_*``: samples/s of the streaming loader alone (read + decode, no model), and
* ``train_*``: samples/s of training epochs (same model, batch size, seed) with the trainer,

for local disk, S3 through boto3 and S3 through s3torchconnector (when installed). Each figure
is the median over ``--repeats`` alternating rounds (the machine may be shared). Wall-clock
rates on a loaded machine swing with other people's work; ``loader_*_cpu_s`` (CPU seconds of
this process over one loader pass) and ``loader_*_server_cpu_s`` (the S3 server's, over the
same pass) do not, and give what the comparison costs in CPU: ``loader_cpu_s3_over_disk`` is
the disk pass's CPU over the S3 pass's, server included.
``s3_over_disk`` uses the reader training uses by default (``s3_reader: auto``:
s3torchconnector when installed), ``s3_over_disk_boto3`` the boto3 one. Also reports the peak
resident memory of an S3 training run (default reader) under ``--memory-budget``. The last line
printed is one JSON object with every figure.

    python scripts/bench_streaming.py --clips 60 --repeats 3 --memory-budget 2GB
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _s3_server import start_s3


def cpu_seconds(process) -> float:
    """CPU seconds a psutil.Process has used so far (all its threads)."""
    times = process.cpu_times()
    return times.user + times.system


def loader_rate(
    storage, index, reader: str, batch_size: int, prefetch: int, server
) -> tuple[float, float, float]:
    """Samples/s of reading and decoding the training split (no model), and the CPU seconds
    this process and the S3 server spent on it."""
    import psutil

    from mmdeepfake.data.layout import pair_samples
    from mmdeepfake.data.streaming import build_split_loader

    samples = pair_samples(index, "train", 0)
    loader = build_split_loader(
        storage, index, "train", batch_size, prefetch=prefetch, s3_reader=reader, samples=samples
    )
    me = psutil.Process()
    cpu, server_cpu = cpu_seconds(me), cpu_seconds(server)
    started = time.perf_counter()
    n = sum(len(batch["labels"]) for batch in loader if batch["faces"] is not None)
    rate = n / (time.perf_counter() - started)
    return rate, cpu_seconds(me) - cpu, cpu_seconds(server) - server_cpu


def train_rate(source: dict, out_dir: Path, args, reader: str, **extra) -> tuple[float, int]:
    """Samples/s of the last training epoch, and the run's peak RSS."""
    from mmdeepfake.train.config import TrainConfig
    from mmdeepfake.train.trainer import train

    config = TrainConfig.from_sources(
        "tiny",
        {
            **source,
            "output": str(out_dir),
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "prefetch": args.prefetch,
            "s3_reader": reader,
            "plots": False,
            "seed": 0,
            **extra,
        },
    )
    result = train(config, progress=False)
    return result.history[-1]["samples_per_s"], result.peak_rss_bytes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=60)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--prefetch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--memory-budget", default="2GB")
    parser.add_argument("--port", type=int, default=0, help="0: a free port")
    args = parser.parse_args()

    import logging

    logging.basicConfig(level=logging.WARNING)
    for handler in logging.getLogger().handlers:
        handler.setLevel(logging.WARNING)
    server, endpoint = start_s3(args.port)
    try:
        from mmdeepfake.data.layout import scan_dataset
        from mmdeepfake.data.storage import open_storage
        from mmdeepfake.data.synth import generate_dataset

        with tempfile.TemporaryDirectory(prefix="mmdeepfake-bench-") as tmp:
            disk = Path(tmp) / "data"
            generate_dataset(open_storage(disk), clips=args.clips, seed=0)
            s3 = open_storage("s3://bench-data/dataset/", endpoint_url=endpoint)
            s3.ensure_bucket()
            files = [p for p in disk.rglob("*") if p.is_file()]
            for path in files:
                s3.write_bytes(path.relative_to(disk).as_posix(), path.read_bytes())
            readers = ["boto3"]
            try:
                import s3torchconnector  # noqa: F401

                readers.append("s3torchconnector")
            except ImportError:
                print("s3torchconnector is not installed: measuring boto3 only", flush=True)
            sources = {"disk": ({"data_dir": str(disk), "prefix": ""}, "boto3")}
            for reader in readers:
                sources[f"s3_{reader}"] = (
                    {"bucket": "bench-data", "endpoint_url": endpoint},
                    reader,
                )
            disk_storage = open_storage(disk)
            disk_index = scan_dataset(disk_storage, "")
            s3_root = open_storage("s3://bench-data/", endpoint_url=endpoint)
            s3_index = scan_dataset(s3_root, "dataset/")

            train_rate(
                sources["disk"][0], Path(tmp) / "warmup", args, "boto3", max_steps_per_epoch=3
            )  # first-step kernel set-up, not measured
            import psutil

            server_process = psutil.Process(server.pid)
            loader: dict[str, list[float]] = {name: [] for name in sources}
            loader_cpu: dict[str, list[float]] = {name: [] for name in sources}
            server_cpu: dict[str, list[float]] = {name: [] for name in sources}
            training: dict[str, list[float]] = {name: [] for name in sources}
            for round_no in range(args.repeats):
                for name, (source, reader) in sources.items():
                    storage, index = (
                        (disk_storage, disk_index) if name == "disk" else (s3_root, s3_index)
                    )
                    rate, cpu, on_server = loader_rate(
                        storage, index, reader, args.batch_size, args.prefetch, server_process
                    )
                    loader[name].append(rate)
                    loader_cpu[name].append(cpu)
                    server_cpu[name].append(on_server)
                    rate, _ = train_rate(source, Path(tmp) / f"out-{name}-{round_no}", args, reader)
                    training[name].append(rate)
                    print(
                        f"round {round_no + 1} {name}: loader {loader[name][-1]:.1f} "
                        f"samples/s ({cpu:.2f} CPU s, server {on_server:.2f}), "
                        f"training {rate:.2f} samples/s",
                        flush=True,
                    )
            default = f"s3_{readers[-1]}"  # what s3_reader: auto picks
            _, peak = train_rate(
                sources[default][0],
                Path(tmp) / "budget",
                args,
                readers[-1],
                memory_budget=args.memory_budget,
            )
    finally:
        server.terminate()
        server.wait(timeout=30)

    from mmdeepfake.train.config import parse_size

    result = {
        "train_samples": len(list(disk_index.keys("frames", "train", "real")))
        + len(list(disk_index.keys("frames", "train", "fake"))),
        "batch_size": args.batch_size,
        "prefetch": args.prefetch,
        "repeats": args.repeats,
        **{f"loader_{k}_samples_per_s": round(statistics.median(v), 2) for k, v in loader.items()},
        **{f"loader_{k}_cpu_s": round(statistics.median(v), 2) for k, v in loader_cpu.items()},
        **{
            f"loader_{k}_server_cpu_s": round(statistics.median(v), 2)
            for k, v in server_cpu.items()
            if k != "disk"
        },
        **{f"train_{k}_samples_per_s": round(statistics.median(v), 3) for k, v in training.items()},
        "memory_budget": args.memory_budget,
        "memory_cap_bytes": int(parse_size(args.memory_budget) * 0.8),
        "peak_rss_bytes_under_budget": peak,
    }
    result["default_s3_reader"] = readers[-1]
    result["s3_over_disk"] = round(
        result[f"train_{default}_samples_per_s"] / result["train_disk_samples_per_s"], 3
    )
    result["loader_cpu_s3_over_disk"] = round(
        result["loader_disk_cpu_s"]
        / (result[f"loader_{default}_cpu_s"] + result[f"loader_{default}_server_cpu_s"]),
        3,
    )
    result["s3_over_disk_boto3"] = round(
        result["train_s3_boto3_samples_per_s"] / result["train_disk_samples_per_s"], 3
    )
    if "train_s3_s3torchconnector_samples_per_s" in result:
        result["s3torchconnector_over_boto3_loader"] = round(
            result["loader_s3_s3torchconnector_samples_per_s"]
            / result["loader_s3_boto3_samples_per_s"],
            3,
        )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
