#!/usr/bin/env python3
"""Before/after inference latency: this working tree against earlier commits, in one run.

On a machine whose speed drifts (shared CPUs, thermal limits), figures taken minutes apart
do not compare. This script exports each ``--ref`` with ``git archive``, then measures every
version in turn, ``--rounds`` times in alternation, each in a fresh interpreter with
``PYTHONPATH`` on that version's ``src``: ``e2e_s`` (median ``Detector.predict`` over
``--runs``, 16 frames), ``model_s`` (the two encoders alone on the same crops and voice
windows, as that version's ``predict`` runs them), their ratio, the stage timings and the
peak RSS. It prints the median over rounds per version and, last, one JSON object.

    python scripts/bench_compare.py --ref 77059f3 --ref 78024a3 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Runs inside each version; only API that every version has (the pipeline's public `encode`
# where it exists, the detector's private `_encode` before it, the two encoders before that).
MEASURE = """
import json, resource, statistics, sys, time
import torch
from mmdeepfake import Detector, evidence
from mmdeepfake.media import features

video, runs = sys.argv[1], int(sys.argv[2])
detector = Detector().eval()
detector.predict(video)
e2e, stages = [], []
for _ in range(runs):
    started = time.perf_counter()
    prediction = detector.predict(video)
    e2e.append(time.perf_counter() - started)
    stages.append(prediction.timings)
ev = evidence.from_video(video, num_frames=16)
faces = features.faces_to_tensor(ev.crops)
waves = features.waves_to_windows(ev.wave, ev.windows)
pipeline = getattr(detector, "pipeline", None)
encode = (pipeline.encode if pipeline is not None else getattr(detector, "_encode", None)) or (
    lambda f, w: (detector.model.encode_image(f), detector.model.encode_audio(w)))
model = []
with torch.inference_mode():
    encode(faces, waves)
    for _ in range(runs):
        started = time.perf_counter()
        encode(faces, waves)
        model.append(time.perf_counter() - started)
names = sorted({name for timing in stages for name in timing})
print(json.dumps({
    "e2e_s": statistics.median(e2e),
    "model_s": statistics.median(model),
    "stages_s": {n: statistics.median([t.get(n, 0.0) for t in stages]) for n in names},
    "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
}))
"""

GENERATE = """
import sys
sys.path.insert(0, {src!r})
from mmdeepfake.testing import face_video
face_video({path!r}, seconds=10.0, size=(1280, 720), fps=25)
"""


def export(ref: str, folder: Path) -> Path:
    """The `src` folder of `ref` (the working tree for "."), for PYTHONPATH."""
    if ref == ".":
        return ROOT / "src"
    target = folder / ref.replace("/", "_")
    target.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", ref, "src"], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target / "src"


def measure(src: Path, video: Path, runs: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(src), "HF_HUB_OFFLINE": "1"}
    out = subprocess.run(
        [sys.executable, "-c", MEASURE, str(video), str(runs)],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["overhead_ratio"] = result["e2e_s"] / result["model_s"]
    result["load_average"] = round(os.getloadavg()[0], 2)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--ref",
        action="append",
        default=[],
        help="git commit to compare (repeatable); the working tree is always measured",
    )
    parser.add_argument(
        "--video", type=Path, help="clip to score (default: a generated 10 s 720p clip)"
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--runs", type=int, default=7, help="predict calls per measurement (median)"
    )
    args = parser.parse_args()

    versions = [*args.ref, "."]
    with tempfile.TemporaryDirectory(prefix="mmdeepfake-compare-") as tmp:
        video = args.video
        if video is None:
            video = Path(tmp) / "clip_720p_10s.mp4"
            generate = GENERATE.format(src=str(ROOT / "src"), path=str(video))
            subprocess.run([sys.executable, "-c", generate], check=True)
        sources = {ref: export(ref, Path(tmp)) for ref in versions}
        rounds: dict[str, list[dict]] = {ref: [] for ref in versions}
        for round_no in range(args.rounds):
            for ref in versions:
                result = measure(sources[ref], video, args.runs)
                rounds[ref].append(result)
                print(
                    f"round {round_no + 1} {ref:>12}: e2e {result['e2e_s']:.3f} s, model "
                    f"{result['model_s']:.3f} s, ratio {result['overhead_ratio']:.2f} "
                    f"(load {result['load_average']})",
                    flush=True,
                )

    summary = {}
    for ref, results in rounds.items():
        names = sorted({name for r in results for name in r["stages_s"]})
        summary[ref] = {
            key: round(statistics.median(r[key] for r in results), 4)
            for key in ("e2e_s", "model_s", "overhead_ratio")
        }
        summary[ref]["overhead_ratio_range"] = [
            round(min(r["overhead_ratio"] for r in results), 3),
            round(max(r["overhead_ratio"] for r in results), 3),
        ]
        summary[ref]["stages_s"] = {
            name: round(statistics.median(r["stages_s"].get(name, 0.0) for r in results), 4)
            for name in names
        }
        summary[ref]["peak_rss_gb"] = round(max(r["peak_rss_bytes"] for r in results) / 1e9, 3)
        summary[ref]["load_averages"] = [r["load_average"] for r in results]
        print(
            f"{ref:>12}: e2e_s {summary[ref]['e2e_s']:.3f}, model_s {summary[ref]['model_s']:.3f}, "
            f"overhead_ratio {summary[ref]['overhead_ratio']:.2f} "
            f"({summary[ref]['overhead_ratio_range'][0]:.2f}-"
            f"{summary[ref]['overhead_ratio_range'][1]:.2f})"
        )
    print(json.dumps({"rounds": args.rounds, "runs": args.runs, "versions": summary}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
