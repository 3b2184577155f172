"""Measure how long a visitor waits for the verdict on a clip, through the real page.

    python demos/time_to_verdict.py [--model DIR_OR_ID] [--seconds 10] [--runs 3]

Serves the page on a free loopback port, generates a synthetic clip of the given length
(``mmdeepfake.data.synth.make_clip``: a real pair, happy face and happy voice), and drives
headless Chromium: upload, click *Detect*, wait for the verdict, then for every explanation
view. The first run includes the model's and the face detector's warm-up; the figures printed
are per run, so the first and the steady state can both be read. Needs Debian's ``chromium``.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from app import initial_model
from mmdeepfake_demo import build_app, launch
from mmdeepfake_demo.browser import detect_through_page


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="folder or hub id (default: starter)")
    parser.add_argument("--seconds", type=float, default=10.0, help="clip length")
    parser.add_argument("--runs", type=int, default=3, help="uploads to time")
    parser.add_argument("--screenshot", default="test-artifacts/time_to_verdict.png")
    args = parser.parse_args(argv)

    from mmdeepfake.data.synth import make_clip

    work = Path(tempfile.mkdtemp(prefix="mmdeepfake-timing-"))
    clip = make_clip(work / "clip.mp4", "happy", "happy", seed=7, seconds=args.seconds)
    app = build_app(initial_model(args.model), examples_dir=work / "examples")
    url = launch(app, port=_free_port(), block=False)
    try:
        for run in range(1, args.runs + 1):
            result = detect_through_page(url, clip, args.screenshot)
            print(
                json.dumps(
                    {
                        "run": run,
                        "clip_seconds": args.seconds,
                        "verdict": result.verdict_text,
                        "seconds_to_verdict": round(result.seconds_to_verdict, 2),
                        "seconds_to_all_views": round(result.seconds_to_explanation, 2),
                        "faces_in_gallery": result.gallery_images,
                    }
                ),
                flush=True,
            )
    finally:
        app.close()
    print(f"screenshot: {args.screenshot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
