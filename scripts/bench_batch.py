#!/usr/bin/env python3
"""Batch prediction throughput: `mmdeepfake-predict` over generated clips with 1 and 2 workers.

Generates ``--clips`` short talking-face clips (mmdeepfake.testing.face_video: H.264 + AAC,
a real face in every frame), then times the whole command, start-up and model loading
included, with ``--workers 1`` and ``--workers 2`` (each of the two then gets one torch thread),
and with ``--workers 1 --threads 1``, alternating the three ``--repeats`` times (the machine may
be shared) and keeping the medians. The model is the default full-size detector saved to a
temporary folder (or ``--model``). The last line printed is one JSON object:
``clips_per_s_1``, ``clips_per_s_2`` and ``speedup_2_workers`` (default settings), and
``clips_per_s_1_one_thread`` with ``speedup_2_workers_same_threads``: two one-thread workers
against one one-thread worker, which shows how the worker pool itself scales.

    python scripts/bench_batch.py --clips 20 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

GENERATE = """
import sys
sys.path.insert(0, {src!r})
from mmdeepfake.testing import face_video
for i in range({clips}):
    path = f"{folder}/clip_{{i:03d}}.mp4"
    face_video(path, seconds={seconds} + (i % 3), size=({width}, {height}))
"""


#: (label, extra arguments) of the timed settings.
SETTINGS = {
    "1": ["--workers", "1"],
    "2": ["--workers", "2"],
    "1_one_thread": ["--workers", "1", "--threads", "1"],
}


def run_predict(folder: Path, model: str, setting: list[str], out: Path, device: str) -> float:
    """Wall seconds of one `mmdeepfake-predict` run over every clip in `folder`."""
    command = [
        sys.executable,
        "-m",
        "mmdeepfake.cli.predict",
        str(folder),
        "--model",
        model,
        *setting,
        "--device",
        device,
        "--format",
        "jsonl",
        "--out",
        str(out),
        "--no-progress",
    ]
    started = time.perf_counter()
    subprocess.run(command, check=True)
    seconds = time.perf_counter() - started
    records = [json.loads(line) for line in out.read_text().splitlines()]
    failed = [r for r in records if r.get("error")]
    if failed:
        raise SystemExit(f"{len(failed)} clips failed: {failed[0]['error']}")
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=20)
    parser.add_argument(
        "--seconds",
        type=float,
        default=3.0,
        help="length of the shortest clip (clips last 3, 4 and 5 s by default)",
    )
    parser.add_argument("--size", default="640x360", help="frame size WxH of the generated clips")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", help="model folder or 'starter' (default: full-size Detector)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory(prefix="mmdeepfake-bench-") as tmp:
        folder = Path(tmp) / "clips"
        folder.mkdir()
        subprocess.run(
            [
                sys.executable,
                "-c",
                GENERATE.format(
                    src=str(ROOT / "src"),
                    clips=args.clips,
                    folder=str(folder),
                    seconds=args.seconds,
                    width=width,
                    height=height,
                ),
            ],
            check=True,
        )
        model = args.model
        if model is None:
            model = str(Path(tmp) / "model")
            save = f"from mmdeepfake import Detector; Detector().save_pretrained({model!r})"
            subprocess.run([sys.executable, "-c", save], check=True)

        load_before = [round(x, 2) for x in os.getloadavg()]
        times: dict[str, list[float]] = {name: [] for name in SETTINGS}
        for round_no in range(args.repeats):
            for name, setting in SETTINGS.items():
                seconds = run_predict(folder, model, setting, Path(tmp) / "out.jsonl", args.device)
                times[name].append(seconds)
                print(
                    f"round {round_no + 1}, {' '.join(setting)}: {seconds:.1f} s, "
                    f"{args.clips / seconds:.2f} clips/s (load {os.getloadavg()[0]:.2f})",
                    flush=True,
                )
        load_after = [round(x, 2) for x in os.getloadavg()]

    result = {
        "clips": args.clips,
        "clip_size": f"{width}x{height}",
        "device": args.device,
        "cpu_count": os.cpu_count(),
        "repeats": args.repeats,
        "load_average_before": load_before,
        "load_average_after": load_after,
    }
    for name in SETTINGS:
        result[f"seconds_{name}"] = round(statistics.median(times[name]), 2)
        result[f"clips_per_s_{name}"] = round(args.clips / statistics.median(times[name]), 3)
    result["speedup_2_workers"] = round(result["clips_per_s_2"] / result["clips_per_s_1"], 3)
    result["speedup_2_workers_same_threads"] = round(
        result["clips_per_s_2"] / result["clips_per_s_1_one_thread"], 3
    )
    print(
        f"1 worker {result['clips_per_s_1']:.2f} clips/s, 2 workers "
        f"{result['clips_per_s_2']:.2f} clips/s: speedup {result['speedup_2_workers']:.2f}x"
    )
    print(
        f"1 worker on 1 thread {result['clips_per_s_1_one_thread']:.2f} clips/s: 2 one-thread "
        f"workers are {result['speedup_2_workers_same_threads']:.2f}x that"
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
