"""Hostile media, before and after: what each input does to a process, its peak memory and time.

Every input class of the hostile-media tests is generated once into ``--work`` and sent through
``Detector.predict`` (and ``mmdeepfake-predict --workers 2`` for the multichannel clip) in a
child process of its own, under a hard address-space limit (``--limit-gb``, RLIMIT_AS) and a
timeout, so that a bomb ends its own child and never the machine. The peak resident memory of
each child comes from the kernel (``os.wait4``). ``--src`` picks the library to measure, so the
same script gives the "before" column from an older checkout::

    git worktree add /tmp/orig d229f35
    python scripts/bench_hostile.py --src /tmp/orig/src      # before
    python scripts/bench_hostile.py                           # after (this checkout)

One line per case: the case, the outcome (a label with p_fake, or the error type, or how the
child died), peak RSS and seconds; the last line is all of it as JSON. ``voice_10s`` and
``voice_60min`` use the full-size default ``Detector()`` to show that memory does not grow
with the length of the recording (beyond the waveform itself: 230 MB for an hour).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, sys
import numpy as np
import torch
case, model, video, image, audio = sys.argv[1:6]
from mmdeepfake import Detector
from mmdeepfake.errors import MmDeepfakeError
torch.manual_seed(0)
try:
    if model == "none":
        from mmdeepfake.media import decode
        arrays = {"str_array": np.array([["a"]]), "object_array": np.empty((4, 4, 3), object),
                  "empty_image": np.zeros((0, 0, 3), np.uint8)}
        if case in arrays:
            decode.load_image(arrays[case])
        else:
            decode.load_audio(audio)
        print(json.dumps({"outcome": "accepted"}))
        sys.exit(0)
    det = Detector.starter() if model == "starter" else Detector()
    if video != "-":
        pred = det.predict(video, num_frames=16)
    else:
        pred = det.predict(image=image, audio=audio)
    text = pred.to_json()
    bare = "NaN" in text or "Infinity" in text
    print(json.dumps({"outcome": f"{pred.label} p={pred.fake_probability:.3f}"
                      + (" (JSON holds NaN)" if bare else "")
                      + (f", {len(pred.faces)} faces" if video != "-" else "")
                      + (f", {len(pred.warnings)} warnings" if pred.warnings else "")}))
except MmDeepfakeError as exc:
    print(json.dumps({"outcome": type(exc).__name__}))
"""


def make_inputs(work: Path) -> dict[str, tuple[str, dict]]:
    """Generate every input (once) in a child; return case -> (runner, arguments)."""
    work.mkdir(parents=True, exist_ok=True)
    script = f"""
import sys
sys.path.insert(0, {str(ROOT / "src")!r})
from pathlib import Path
import numpy as np, soundfile as sf
from PIL import Image
from mmdeepfake.testing import media as mf
w = Path({str(work)!r})
def once(name, make):
    if not (w / name).exists():
        make(w / name)
once("face.jpg", lambda p: Image.fromarray(mf.face_photo()).save(p))
once("clip71.mp4", lambda p: mf.face_video(p, seconds=3.0, size=(320, 240), channels=8))
once("voice71.mkv", lambda p: mf.multichannel_audio(p, seconds=3.0, channels=8))
once("clip.mp4", lambda p: mf.face_video(p, seconds=3.0, size=(320, 240)))
once("v44099.wav", lambda p: mf.odd_rate_wav(p, 44099, 3.0))
once("v8001.wav", lambda p: mf.odd_rate_wav(p, 8001, 3.0))
once("v3000.wav", lambda p: mf.odd_rate_wav(p, 3000, 3.0))
once("4h.flac", lambda p: mf.long_flac(p, hours=4.0))
once("inf.wav", lambda p: mf.float_wav(p, np.inf))
once("1e30.wav", lambda p: mf.float_wav(p, 1e30))
once("portrait.mp4", lambda p: mf.face_video(p, seconds=2.0, size=(320, 240), rotation=90))
once("damaged.mp3", lambda p: mf.damaged_mp3(p))
once("bomb8000.mp4", lambda p: mf.huge_frame_video(p, size=(8000, 8000), num_frames=40))
once("voice10s.wav", lambda p: mf.write_audio(p, mf.voice_like(10.0)))
def hour(p):
    block = mf.voice_like(10.0)
    with sf.SoundFile(str(p), "w", samplerate=16000, channels=1, subtype="PCM_16") as out:
        for _ in range(360):
            out.write(block)
once("voice60min.wav", hour)
"""
    subprocess.run([sys.executable, "-c", script], check=True)
    face = str(work / "face.jpg")
    pair = "pair"
    return {
        "multichannel_7.1_clip": ("video", {"video": work / "clip71.mp4"}),
        "multichannel_7.1_mkv_voice": (pair, {"image": face, "audio": work / "voice71.mkv"}),
        "multichannel_cli_workers2": ("cli", {"folder": work, "names": ["clip71.mp4", "clip.mp4"]}),
        "wav_44099Hz": (pair, {"image": face, "audio": work / "v44099.wav"}),
        "wav_8001Hz": (pair, {"image": face, "audio": work / "v8001.wav"}),
        "wav_3000Hz": ("decode", {"audio": work / "v3000.wav"}),
        "flac_4h": (pair, {"image": face, "audio": work / "4h.flac"}),
        "video_8000x8000x40": ("video", {"video": work / "bomb8000.mp4"}),
        "wav_inf": (pair, {"image": face, "audio": work / "inf.wav"}),
        "wav_1e30": (pair, {"image": face, "audio": work / "1e30.wav"}),
        "rotated_clip": ("video", {"video": work / "portrait.mp4"}),
        "str_array": ("decode", {}),
        "object_array": ("decode", {}),
        "empty_image": ("decode", {}),
        "damaged_mp3": (pair, {"image": face, "audio": work / "damaged.mp3"}),
        "voice_10s": ("full", {"image": face, "audio": work / "voice10s.wav"}),
        "voice_60min": ("full", {"image": face, "audio": work / "voice60min.wav"}),
    }


def run_case(case: str, runner: str, spec: dict, src: Path, limit: int, timeout: float) -> dict:
    env = {**os.environ, "PYTHONPATH": str(src), "HF_HUB_OFFLINE": "1"}
    if runner == "cli":
        folder = Path(spec["folder"]) / "cli"
        folder.mkdir(exist_ok=True)
        for name in spec["names"]:
            link = folder / name
            if not link.exists():
                link.symlink_to(Path(spec["folder"]) / name)
        args = [
            sys.executable,
            "-m",
            "mmdeepfake.cli.predict",
            str(folder),
            "--model",
            "starter",
            "--num-frames",
            "4",
            "--workers",
            "2",
            "--threads",
            "1",
            "--no-progress",
        ]
    else:
        model = {"video": "starter", "pair": "starter", "full": "default", "decode": "none"}[runner]
        args = [
            sys.executable,
            "-c",
            CHILD,
            case,
            model,
            str(spec.get("video", "-")),
            str(spec.get("image", "-")),
            str(spec.get("audio", "-")),
        ]

    started = time.perf_counter()
    proc = subprocess.Popen(
        [*_limited(limit), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
        timed_out = False
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        timed_out = True
    seconds = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "case": case,
        "outcome": _outcome(runner, proc.returncode, stdout, stderr, timed_out, timeout),
        "peak_rss_mb": round(usage.ru_maxrss / 1024),
        "seconds": round(seconds, 1),
    }


def _limited(limit: int) -> list[str]:
    """A command prefix that caps the address space of what it then executes (exec keeps it)."""
    code = (
        "import os, resource, sys; "
        f"resource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit})); "
        "os.execv(sys.argv[1], sys.argv[1:])"
    )
    return [sys.executable, "-c", code]


def _outcome(runner, status, stdout, stderr, timed_out, timeout) -> str:
    if timed_out:
        return f"hung: killed after {timeout:.0f} s"
    if status is not None and status < 0:
        return f"killed by signal {-status} ({signal.Signals(-status).name})"
    if any(
        sign in stderr for sign in ("MemoryError", "bad_alloc", "annot allocate", "can't allocate")
    ):
        return "out of memory (MemoryError under the address-space limit)"
    if runner == "cli":
        records = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
        parts = [
            r.get("error_type") or f"{r['label']} p={r['fake_probability']:.3f}" for r in records
        ]
        return f"exit {status}: " + "; ".join(parts) if parts else f"exit {status}, no records"
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    if lines:
        return json.loads(lines[-1])["outcome"]
    last = stderr.strip().splitlines()[-1] if stderr.strip() else ""
    return f"exit {status}: {last[:120]}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", type=Path, default=ROOT / "src", help="library source to measure")
    parser.add_argument(
        "--work",
        type=Path,
        default=Path("/tmp/mmdeepfake-hostile"),
        help="folder for the generated inputs (kept between runs)",
    )
    parser.add_argument("--limit-gb", type=float, default=3.0, help="address-space cap per case")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per case")
    parser.add_argument("--cases", nargs="*", help="only these cases")
    args = parser.parse_args()
    inputs = make_inputs(args.work)
    rows = []
    for case in inputs:
        if args.cases and case not in args.cases:
            continue
        # RUSAGE_CHILDREN keeps the largest child so far: measure each case in a fresh parent.
        result = subprocess.run(
            [
                sys.executable,
                __file__,
                "--one",
                case,
                "--src",
                str(args.src),
                "--work",
                str(args.work),
                "--limit-gb",
                str(args.limit_gb),
                "--timeout",
                str(args.timeout),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        row = json.loads(result.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(
            f"{row['case']:28s} {row['outcome']:60s} {row['peak_rss_mb']:6d} MB "
            f"{row['seconds']:7.1f} s",
            flush=True,
        )
    print(json.dumps(rows))


def one(case: str, src: Path, work: Path, limit_gb: float, timeout: float) -> None:
    runner, spec = make_inputs(work)[case]
    print(json.dumps(run_case(case, runner, spec, src, int(limit_gb * 1024**3), timeout)))


if __name__ == "__main__":
    if "--one" in sys.argv:
        i = sys.argv.index("--one")
        case = sys.argv[i + 1]
        rest = argparse.ArgumentParser()
        rest.add_argument("--src", type=Path)
        rest.add_argument("--work", type=Path)
        rest.add_argument("--limit-gb", type=float)
        rest.add_argument("--timeout", type=float)
        opts = rest.parse_args(sys.argv[1:i] + sys.argv[i + 2 :])
        one(case, opts.src, opts.work, opts.limit_gb, opts.timeout)
    else:
        main()
