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

With ``--engine ray`` it compares the two engines on the same cores instead, in one run: the
local engine (``score_jobs``, one process) and the Ray engine (``score_dataset`` on a local Ray
instance with ``--ray-cpus`` cores: decoding in CPU workers, the model in one actor), each in
its own process, alternating ``--repeats`` times. Each reports its start-up (Ray's, the
model's) and the time from its first record to its last; the steady rate (clips after the
first, per second) is the engine's own speed, without the start-up a long batch pays once.
Peak memory is the resident memory of the process and all its children (the Ray workers
included), sampled every 0.2 s. The last line is one JSON object: ``local_steady_clips_per_s``,
``ray_steady_clips_per_s``, ``ray_vs_local`` (their ratio), the whole-run figures
``*_clips_per_s`` and ``*_startup_s``, and ``*_peak_rss_mib``.

    python scripts/bench_batch.py --engine ray --clips 12 --repeats 1
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


# One engine's run, in a process of its own: prints one JSON line with its timings.
ENGINE_RUN = """
import json, os, sys, time
sys.path.insert(0, {src!r})
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as mmdeepfake-predict sets it
started = time.perf_counter()
from mmdeepfake.batch import expand_inputs, score_jobs
jobs = expand_inputs([{folder!r}])
times = []
if {engine!r} == "local":
    for record in score_jobs(jobs, {model!r}):
        assert record["error"] is None, record["error"]
        times.append(time.perf_counter())
else:
    from mmdeepfake.scale.cluster import connect
    from mmdeepfake.scale.scoring import jobs_dataset, score_dataset
    ray = connect(num_cpus={cpus})
    ray.data.DataContext.get_current().enable_progress_bars = False
    records = score_dataset(jobs_dataset(jobs), {model!r}, actors=1, gather_workers={cpus} - 1)
    for batch in records.iter_batches(batch_size=None, batch_format="pyarrow"):
        assert batch.column("error").null_count == batch.num_rows, batch.column("error")
        times.extend([time.perf_counter()] * batch.num_rows)
print(json.dumps({{"started": started, "times": times}}))
"""


def run_engine(engine: str, folder: Path, model: str, cpus: int) -> dict[str, float]:
    """Run one engine over every clip in ``folder``; its timings and peak memory."""
    import threading

    import psutil

    code = ENGINE_RUN.format(
        src=str(ROOT / "src"), folder=str(folder), model=model, engine=engine, cpus=cpus
    )
    launched = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        root = psutil.Process(child.pid)
        while not done.is_set():
            try:
                tree = [root, *root.children(recursive=True)]
                rss = 0
                for process in tree:
                    try:
                        rss += process.memory_info().rss
                    except psutil.Error:
                        pass
                peak = max(peak, rss)
            except psutil.Error:
                return
            done.wait(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, _ = child.communicate()
    done.set()
    sampler.join()
    if child.returncode:
        raise SystemExit(f"the {engine} engine failed (exit status {child.returncode})")
    finished = time.perf_counter()
    times = json.loads(out.splitlines()[-1])["times"]
    first, last = times[0], times[-1]
    return {
        "seconds": finished - launched,
        "startup_s": first - launched,
        "steady_clips_per_s": (len(times) - 1) / (last - first) if last > first else 0.0,
        "peak_rss_mib": peak / 2**20,
    }


def compare_engines(folder: Path, model: str, args: argparse.Namespace) -> dict[str, object]:
    """The local engine against the Ray engine on the same cores, alternating; medians."""
    runs: dict[str, list[dict[str, float]]] = {"local": [], "ray": []}
    for round_no in range(args.repeats):
        for engine, results in runs.items():
            result = run_engine(engine, folder, model, args.ray_cpus)
            results.append(result)
            print(
                f"round {round_no + 1}, {engine}: {result['seconds']:.1f} s "
                f"(start-up {result['startup_s']:.1f} s), steady "
                f"{result['steady_clips_per_s']:.2f} clips/s, peak "
                f"{result['peak_rss_mib']:.0f} MiB (load {os.getloadavg()[0]:.2f})",
                flush=True,
            )
    whole = {e: args.clips / statistics.median(r["seconds"] for r in rs) for e, rs in runs.items()}
    steady = {e: statistics.median(r["steady_clips_per_s"] for r in rs) for e, rs in runs.items()}
    summary: dict[str, object] = {}
    for engine, results in runs.items():
        summary[f"{engine}_clips_per_s"] = round(whole[engine], 3)
        summary[f"{engine}_startup_s"] = round(
            statistics.median(r["startup_s"] for r in results), 2
        )
        summary[f"{engine}_steady_clips_per_s"] = round(steady[engine], 3)
        summary[f"{engine}_peak_rss_mib"] = round(max(r["peak_rss_mib"] for r in results))
    summary["ray_vs_local"] = round(steady["ray"] / steady["local"], 3) if steady["local"] else None
    summary["ray_vs_local_whole_run"] = round(whole["ray"] / whole["local"], 3)
    return summary


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
    parser.add_argument(
        "--engine",
        default="local",
        choices=("local", "ray"),
        help="local: worker counts of the local engine; ray: the Ray engine against the local",
    )
    parser.add_argument(
        "--ray-cpus", type=int, default=os.cpu_count() or 2, help="cores of the Ray instance"
    )
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
        if args.engine == "ray":
            result = {
                "engine": "ray",
                "clips": args.clips,
                "clip_size": f"{width}x{height}",
                "cpu_count": os.cpu_count(),
                "ray_cpus": args.ray_cpus,
                "repeats": args.repeats,
                "load_average_before": load_before,
                **compare_engines(folder, model, args),
                "load_average_after": [round(x, 2) for x in os.getloadavg()],
            }
            print(json.dumps(result))
            return 0
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
