"""`mmdeepfake-predict` as a user runs it: a real subprocess over real files and a real S3 API."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest
import torch

from mmdeepfake import Detector
from mmdeepfake.testing import media as mf
from tiny_models import TINY_ARCH

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("model")
    Detector(**TINY_ARCH).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clips")
    (folder / "nested").mkdir()
    mf.face_video(folder / "a.mp4", seconds=2.5, size=(320, 240))
    mf.face_video(folder / "nested" / "b.mov", seconds=2.5, size=(320, 240))
    (folder / "nested" / "broken.mp4").write_bytes(b"\x00\x00\x00 not really a video")
    (folder / "readme.txt").write_text("not media: ignored because of its suffix")
    return folder


def run_predict(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mmdeepfake.cli.predict", *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_folder_scan_jsonl_with_error_records(model_dir, clips):
    result = run_predict(str(clips), "--model", str(model_dir), "--num-frames", "4")
    assert result.returncode == 1, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["source"].split("/")[-1] for r in records] == ["a.mp4", "b.mov", "broken.mp4"]
    ok, bad = records[:2], records[2]
    for record in ok:
        assert record["error"] is None and record["label"] in ("real", "fake")
        assert len(record["faces"]) == 4
    assert bad["error"] and bad["error_type"].endswith("Error")
    assert "Traceback" not in result.stderr
    assert "1 of 3 inputs failed" in result.stderr


def test_worker_processes_give_the_same_records_in_order(model_dir, clips):
    one = run_predict(str(clips), "--model", str(model_dir), "--num-frames", "4", "--threads", "2")
    two = run_predict(
        str(clips),
        "--model",
        str(model_dir),
        "--num-frames",
        "4",
        "--workers",
        "2",
        "--threads",
        "1",
    )
    assert one.returncode == two.returncode == 1, two.stderr
    first, second = ([json.loads(line) for line in r.stdout.splitlines()] for r in (one, two))
    assert [r["source"] for r in first] == [r["source"] for r in second]
    for a, b in zip(first, second):
        assert a["error"] == b["error"]
        if a["error"] is None:
            assert a["fake_probability"] == pytest.approx(b["fake_probability"], abs=1e-4)


def test_csv_output_file_and_success_exit(tmp_path, model_dir, clips):
    out = tmp_path / "results.csv"
    result = run_predict(
        str(clips / "a.mp4"),
        "--model",
        str(model_dir),
        "--num-frames",
        "2",
        "--format",
        "csv",
        "--out",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 1 and rows[0]["label"] in ("real", "fake")
    assert 0.0 <= float(rows[0]["fake_probability"]) <= 1.0
    assert rows[0]["image_score"] and rows[0]["audio_score"]


def test_pair_input_and_json_format(tmp_path, model_dir):
    from PIL import Image

    Image.fromarray(mf.face_photo()).save(tmp_path / "face.jpg")
    mf.write_audio(tmp_path / "voice.flac", mf.voice_like(seconds=2.0))
    result = run_predict(
        "--pair",
        str(tmp_path / "face.jpg"),
        str(tmp_path / "voice.flac"),
        "--model",
        str(model_dir),
        "--format",
        "json",
    )
    assert result.returncode == 0, result.stderr
    (record,) = json.loads(result.stdout)
    assert record["faces"][0]["time"] is None


def test_s3_prefix_is_streamed(s3_bucket, model_dir, clips):
    client = s3_bucket.server.client()
    client.put_object(
        Bucket=s3_bucket.name, Key="incoming/a.mp4", Body=(clips / "a.mp4").read_bytes()
    )
    client.put_object(Bucket=s3_bucket.name, Key="incoming/notes.txt", Body=b"skip me")
    result = run_predict(
        s3_bucket.uri("incoming/"),
        "--model",
        str(model_dir),
        "--num-frames",
        "2",
        "--endpoint-url",
        s3_bucket.endpoint_url,
    )
    assert result.returncode == 0, result.stderr
    (record,) = [json.loads(line) for line in result.stdout.splitlines()]
    assert record["source"] == s3_bucket.uri("incoming/a.mp4")


@pytest.mark.parametrize(
    "args, message",
    [
        (["does-not-exist.mp4"], "does-not-exist.mp4"),
        (["--model", "/no/such/model", "x.mp4"], "does not exist"),
        ([], "nothing to score"),
        (["--threads", "0", "x.mp4"], "argument --threads: must be at least 1"),
    ],
)
def test_user_mistakes_exit_cleanly(args, message, model_dir):
    if "--model" not in args:
        args = [*args, "--model", str(model_dir)]
    result = run_predict(*args)
    assert result.returncode != 0
    assert message in result.stdout + result.stderr
    assert "Traceback" not in result.stderr
