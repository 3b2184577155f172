#!/usr/bin/env python3
"""Inference latency: `Detector.predict` end to end against the encoders' own compute.

In one run, on the same clip and the same evidence:

* ``e2e_s``: median over ``--runs`` of ``Detector.predict(video)`` with ``--frames`` frames
  (decode, face detection, crops, features, encoders, fusion, building the Prediction);
* ``model_s``: median over ``--runs`` of the two encoders' forward passes alone
  (``DetectionPipeline.encode``, with predict's thread settings), on the same face crops and
  voice windows that predict used;
* ``overhead_ratio = e2e_s / model_s``, the median split by stage (``Prediction.timings``),
  the process's peak RSS, and ``import_s`` / ``import_detector_s`` / ``load_s`` /
  ``first_predict_s`` measured in a fresh (cold) Python process (see `cold_start`).

Without ``--video`` the script generates a 10 s 1280x720 25 fps H.264 + AAC clip with a real
face (mmdeepfake.testing.face_video) in a child process, so generating it does not count in
the peak RSS. The model is the default full-size detector (ResNet-18 width 64, CNN-BiLSTM),
untrained: its weights do not change the cost. The last line printed is one JSON object.

    python scripts/bench_inference.py --runs 5
"""

from __future__ import annotations

import argparse
import json
import os
import resource
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
face_video({path!r}, seconds=10.0, size=(1280, 720), fps=25)
"""

# Run in a fresh interpreter: what a command-line user or a new worker process pays.
COLD = """
import json, sys, time
t0 = time.perf_counter()
import mmdeepfake
t1 = time.perf_counter()
from mmdeepfake import Detector
t2 = time.perf_counter()
detector = Detector.from_pretrained({model!r}).to({device!r})
t3 = time.perf_counter()
detector.predict({video!r}, num_frames={frames})
t4 = time.perf_counter()
print(json.dumps({{"import_s": t1 - t0, "import_detector_s": t2 - t0, "load_s": t3 - t2,
                  "first_predict_s": t4 - t3}}))
"""


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def cold_start(model: Path, video: Path, device: str, frames: int) -> dict:
    """Seconds a new interpreter spends importing, loading and on its first prediction.

    ``import_s`` is ``import mmdeepfake`` (kept light: no torch, PyAV, boto3, gradio);
    ``import_detector_s`` adds ``from mmdeepfake import Detector``, which needs torch, whose own
    import (``import_torch_s``, another fresh interpreter) is most of it.
    """
    code = COLD.format(model=str(model), device=device, video=str(video), frames=frames)
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    torch_code = (
        "import time; t = time.perf_counter(); import torch; print(time.perf_counter() - t)"
    )
    out = subprocess.run(
        [sys.executable, "-c", torch_code], check=True, capture_output=True, text=True
    )
    result["import_torch_s"] = float(out.stdout.strip().splitlines()[-1])
    return result


def median(values: list[float]) -> float:
    return round(statistics.median(values), 4)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--video", type=Path, help="clip to score (default: a generated 10 s 720p clip)"
    )
    parser.add_argument("--runs", type=int, default=5, help="timed runs (median; at least 5)")
    parser.add_argument("--frames", type=int, default=16, help="frames sampled per clip")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--model", help="model folder (default: the full-size default Detector)")
    args = parser.parse_args()
    if args.runs < 5:
        parser.error("--runs must be at least 5")

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory(prefix="mmdeepfake-bench-") as tmp:
        video = args.video
        if video is None:
            video = Path(tmp) / "clip_720p_10s.mp4"
            started = time.perf_counter()
            generate = GENERATE.format(src=str(ROOT / "src"), path=str(video))
            subprocess.run([sys.executable, "-c", generate], check=True)
            print(
                f"generated {video.name} ({video.stat().st_size / 1e6:.1f} MB) in "
                f"{time.perf_counter() - started:.1f} s",
                flush=True,
            )

        import torch

        from mmdeepfake import Detector
        from mmdeepfake.media import features
        from mmdeepfake.threads import torch_threads

        if args.model:
            detector = Detector.from_pretrained(args.model)
            model_dir = Path(args.model)
        else:
            detector = Detector()
            model_dir = Path(tmp) / "model"
            detector.save_pretrained(model_dir)
        detector = detector.to(args.device)
        device = torch.device(args.device)

        def sync() -> None:
            if device.type == "cuda":
                torch.cuda.synchronize()

        # Warm-up: the first call builds the face detector and picks kernels.
        detector.predict(str(video), num_frames=args.frames)

        load_before = load_average()
        e2e, stages = [], []
        for _ in range(args.runs):
            started = time.perf_counter()
            prediction = detector.predict(str(video), num_frames=args.frames)
            sync()
            e2e.append(time.perf_counter() - started)
            stages.append(prediction.timings)

        # The same crops and voice predict scored (handed back by its pipeline), fed to the
        # encoders alone.
        pipeline = detector.pipeline
        scored = pipeline.run(str(video), num_frames=args.frames, keep_media=True)
        faces = features.faces_to_tensor(scored.crops).to(device)
        waves = features.waves_to_windows(scored.wave, features.audio_windows(scored.wave))
        waves = waves.to(device)
        model_times = []
        with torch.inference_mode():
            pipeline.encode(faces, waves)
            for _ in range(args.runs):
                started = time.perf_counter()
                pipeline.encode(faces, waves)
                sync()
                model_times.append(time.perf_counter() - started)
            # The split between the two encoders, each as predict runs it.
            image_times, audio_times = [], []
            for _ in range(args.runs):
                started = time.perf_counter()
                detector.model.encode_image(faces)
                sync()
                image_times.append(time.perf_counter() - started)
                started = time.perf_counter()
                with torch_threads(1, device):
                    detector.model.encode_audio(waves)
                sync()
                audio_times.append(time.perf_counter() - started)
        load_after = load_average()
        peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

        cold = cold_start(model_dir, video, args.device, args.frames)

    stage_names = sorted({name for timing in stages for name in timing})
    result = {
        "device": args.device,
        "torch_threads": torch.get_num_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"),
        "frames": args.frames,
        "runs": args.runs,
        "faces": len(scored.crops),
        "voice_windows": len(waves),
        "e2e_s": median(e2e),
        "model_s": median(model_times),
        "image_encoder_s": median(image_times),
        "audio_encoder_s": median(audio_times),
        "stages_s": {name: median([t.get(name, 0.0) for t in stages]) for name in stage_names},
        "peak_rss_bytes": peak_rss,
        **{k: round(v, 3) if isinstance(v, float) else v for k, v in cold.items()},
        "load_average_before": load_before,
        "load_average_after": load_after,
    }
    result["overhead_ratio"] = round(result["e2e_s"] / result["model_s"], 3)
    print(f"e2e_s          {result['e2e_s']:.3f}  (median of {args.runs}, {args.frames} frames)")
    print(
        f"model_s        {result['model_s']:.3f}  (image {result['image_encoder_s']:.3f}, "
        f"audio {result['audio_encoder_s']:.3f})"
    )
    print(f"overhead_ratio {result['overhead_ratio']:.2f}")
    for name, value in result["stages_s"].items():
        print(f"  {name:<15}{value:.3f}")
    print(f"peak RSS       {peak_rss / 1e9:.2f} GB")
    print(
        f"import_s       {result['import_s']:.3f}  (import mmdeepfake; with Detector and "
        f"torch {result['import_detector_s']:.2f}, torch alone {result['import_torch_s']:.2f})"
    )
    print(
        f"load_s         {result['load_s']:.2f}  (from_pretrained; first predict of a cold "
        f"process {result['first_predict_s']:.2f})"
    )
    print(f"load average   {load_before} -> {load_after} (1, 5, 15 min)")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
