#!/usr/bin/env python3
"""Training throughput from ``videos/`` (decoded on the fly) against prepared frames and audio.

Writes ``--clips`` talking-face videos (``mmdeepfake.testing.media.face_video``: a photographed
face over a moving background, a voice-like track; ``--size``, ``--seconds``) as a ``folders``
dataset with official splits, prepares it once with ``mmdeepfake prepare`` (``--frames`` face
crops per clip), and lays the same videos out under ``videos/`` with the prepared
``labels/clips.csv``: two datasets of the same clips, one extracted, one of videos only.
Training samples the videos at ``--frames`` frames as well (the model's ``num_frames``), so
both give the same samples. Then measures, on local disk,

* ``loader_*``: samples/s of the streaming loader alone over the train split, shuffled as
  training reads it (no model), and
* ``train_*``: samples/s of a training epoch (tiny preset, same batch size and seed),

each the median over ``--repeats`` alternating rounds (the machine may be shared). The last
line printed is one JSON object with every figure and ``videos_over_frames``, the training
ratio.

    python scripts/bench_video_training.py --clips 16 --frames 8 --repeats 3
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path


def make_sources(root: Path, clips: int, size: tuple[int, int], seconds: float) -> Path:
    """A ``folders`` tree of ``clips`` talking-face videos, half real and half fake, a quarter
    of them (at least two) in the validation split, with those splits in labels.csv."""
    from mmdeepfake.testing.media import face_video

    source = root / "source"
    rows = ["path,label,split"]
    validate = max(2, clips // 4)
    for i in range(clips):
        label = "real" if i % 2 == 0 else "fake"
        path = f"{label}/id{i:03d}/clip.mp4"
        (source / path).parent.mkdir(parents=True, exist_ok=True)
        face_video(source / path, seconds=seconds, size=size)
        rows.append(f"{path},{label},{'validate' if i < validate else 'train'}")
    (source / "labels.csv").write_text("\n".join(rows) + "\n")
    return source


def make_video_dataset(root: Path, source: Path, prepared: Path) -> None:
    """The prepared clips as videos only: ``videos/{split}/{label}/<clip>.mp4`` + clips.csv."""
    clips_csv = (prepared / "labels/clips.csv").read_text()
    for row in csv.DictReader(io.StringIO(clips_csv)):
        key = root / f"videos/{row['split']}/{row['label']}/{row['clip_id']}.mp4"
        key.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / row["source"], key)
    (root / "labels").mkdir(parents=True, exist_ok=True)
    (root / "labels/clips.csv").write_text(clips_csv)


def loader_rate(root: Path, frames: int, batch_size: int, prefetch: int) -> tuple[float, int]:
    """Samples per second of reading and decoding the train split (no model), and the count."""
    from mmdeepfake.config import PreprocessConfig
    from mmdeepfake.data.layout import scan_dataset
    from mmdeepfake.data.storage import open_storage
    from mmdeepfake.data.streaming import build_split_loader
    from mmdeepfake.data.video_samples import split_samples

    storage = open_storage(root)
    index = scan_dataset(storage, "")
    loader = build_split_loader(
        storage,
        index,
        "train",
        batch_size,
        prefetch=prefetch,
        shuffle=True,  # as training reads it: a video's frames mixed with other videos'
        samples=split_samples(index, "train", 0),
        preprocess=PreprocessConfig(num_frames=frames),
    )
    started = time.perf_counter()
    n = sum(len(batch["labels"]) for batch in loader if batch["faces"] is not None)
    return n / (time.perf_counter() - started), n


def train_rate(root: Path, out: Path, args: argparse.Namespace, **extra) -> float:
    """Samples/s of the training epoch (the trainer's own figure)."""
    from mmdeepfake.train.config import TrainConfig
    from mmdeepfake.train.trainer import train

    config = TrainConfig.from_sources(
        "tiny",
        {
            "data_dir": str(root),
            "output": str(out),
            "epochs": 1,
            "batch_size": args.batch_size,
            "prefetch": args.prefetch,
            "plots": False,
            "seed": 0,
            "model": {"num_frames": args.frames},
            **extra,
        },
    )
    return train(config, progress=False).history[-1]["samples_per_s"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=16)
    parser.add_argument("--frames", type=int, default=8, help="frames per clip, both ways")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--prefetch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--size", default="640x360", help="video frame size, WIDTHxHEIGHT")
    parser.add_argument("--seconds", type=float, default=2.0, help="length of each video")
    args = parser.parse_args()
    width, height = (int(n) for n in args.size.lower().split("x"))

    import logging

    logging.basicConfig(level=logging.WARNING)
    for handler in logging.getLogger().handlers:
        handler.setLevel(logging.WARNING)  # the trainer raises mmdeepfake's loggers to INFO
    from mmdeepfake.prepare.engine import prepare_dataset

    with tempfile.TemporaryDirectory(prefix="mmdeepfake-bench-") as tmp:
        root = Path(tmp)
        source = make_sources(root, args.clips, (width, height), args.seconds)
        frames = root / "frames"
        summary = prepare_dataset(
            str(source), str(frames), "folders", frames_per_clip=args.frames, progress=False
        )
        videos = root / "videos"
        make_video_dataset(videos, source, frames)
        datasets = {"frames": frames, "videos": videos}
        train_rate(frames, root / "warmup", args, max_steps_per_epoch=2)  # kernel set-up
        loader: dict[str, list[float]] = {name: [] for name in datasets}
        training: dict[str, list[float]] = {name: [] for name in datasets}
        counts: dict[str, int] = {}
        for round_no in range(args.repeats):
            for name, dataset in datasets.items():
                rate, counts[name] = loader_rate(
                    dataset, args.frames, args.batch_size, args.prefetch
                )
                loader[name].append(rate)
                training[name].append(train_rate(dataset, root / f"out-{name}-{round_no}", args))
                print(
                    f"round {round_no + 1} {name}: loader {loader[name][-1]:.1f} samples/s, "
                    f"training {training[name][-1]:.2f} samples/s",
                    flush=True,
                )
    result = {
        "clips": args.clips,
        "video": f"{width}x{height}, {args.seconds:g} s, H.264 + AAC",
        "prepared_clips": summary.written,
        "frames_per_clip": args.frames,
        "train_samples": counts,
        "batch_size": args.batch_size,
        "prefetch": args.prefetch,
        "repeats": args.repeats,
        **{f"loader_{k}_samples_per_s": round(statistics.median(v), 2) for k, v in loader.items()},
        **{f"train_{k}_samples_per_s": round(statistics.median(v), 3) for k, v in training.items()},
    }
    result["loader_videos_over_frames"] = round(
        result["loader_videos_samples_per_s"] / result["loader_frames_samples_per_s"], 3
    )
    result["videos_over_frames"] = round(
        result["train_videos_samples_per_s"] / result["train_frames_samples_per_s"], 3
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
