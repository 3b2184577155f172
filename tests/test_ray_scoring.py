"""Batch scoring on Ray (`mmdeepfake predict --engine ray`, `score_dataset`): a local Ray
instance with 2 CPUs, real clips, a real S3 API; the records must be the local engine's."""

from __future__ import annotations

import functools
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from mmdeepfake.batch import expand_inputs, load_on_device, score_jobs
from mmdeepfake.cli.predict import main as predict_main
from mmdeepfake.errors import ConfigError
from mmdeepfake.testing import media as mf

MODEL = "starter"
OPTIONS = {"num_frames": 4}


@pytest.fixture(scope="module")
def ray_instance(s3_server):
    """One local Ray instance for the module, started after the S3 server's credentials are in
    the environment (its workers inherit the environment of this process)."""
    pytest.importorskip("ray.data", reason='the optional extra: pip install "mmdeepfake[scale]"')
    from mmdeepfake.scale.cluster import connect

    ray = connect(num_cpus=2)
    # Ray's workers cannot import this module (pytest put its folder on this process's path
    # only): the loader hook below travels to them by value.
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield ray
    ray.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    ray.shutdown()


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    """A folder of short clips: with a face and a voice, without sound, without a face, and a
    corrupt one; beside it a voice recording."""
    root = tmp_path_factory.mktemp("media")
    folder = root / "clips"
    folder.mkdir()
    mf.face_video(folder / "a.mp4", seconds=1.5)
    mf.face_video(folder / "silent.mp4", seconds=1.5, with_audio=False)
    rng = np.random.default_rng(0)
    gradient = np.linspace(0, 255, 320, dtype=np.uint8)[None, None, :, None]
    frames = np.broadcast_to(gradient, (38, 240, 320, 3)).copy()
    frames[:, :40] = rng.integers(0, 255, (38, 40, 320, 3), dtype=np.uint8)
    mf.write_video(folder / "noface.mp4", frames, audio=mf.voice_like(1.5))
    (folder / "broken.mp4").write_bytes(b"\x00\x00\x00 not really a video")
    mf.write_audio(root / "voice.wav", mf.voice_like(1.5))
    return SimpleNamespace(folder=folder, voice=root / "voice.wav")


def local_records(jobs, **options: Any) -> list[dict]:
    return list(score_jobs(jobs, MODEL, options={**OPTIONS, **options}))


def assert_same_records(ray_records: list[dict], local: list[dict]) -> None:
    """One Ray record per local one, the same in every field but the timings (probabilities
    within 1e-5: the two engines run torch with different thread counts)."""
    assert sorted(r["source"] for r in ray_records) == sorted(r["source"] for r in local)
    by_source = {r["source"]: r for r in ray_records}
    for expected in local:
        got = by_source[expected["source"]]
        assert got.get("label") == expected.get("label"), expected["source"]
        assert got["error"] == expected["error"]
        assert got.get("error_type") == expected.get("error_type")
        assert got.get("model") == expected.get("model")
        if expected["error"] is not None:
            continue
        assert got["fake_probability"] == pytest.approx(expected["fake_probability"], abs=1e-5)
        scores = expected["modality_scores"]
        assert got["modality_scores"] == pytest.approx(scores, abs=1e-5)
        assert got["modalities"] == expected["modalities"]
        assert got["warnings"] == expected["warnings"]
        assert len(got["faces"]) == len(expected["faces"])
        assert len(got["segments"]) == len(expected["segments"])


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# --- without a cluster: flags and imports --------------------------------------------------------


def test_local_engine_does_not_import_ray():
    code = (
        "import sys, mmdeepfake, mmdeepfake.batch, mmdeepfake.cli.predict; "
        "print('ray' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize(
    "args, message",
    [
        (["x.mp4", "--engine", "ray"], "argument --out: --engine ray writes"),
        (["x.mp4", "--engine", "ray", "--out", "o", "--format", "csv"], "jsonl or parquet"),
        (["x.mp4", "--engine", "ray", "--out", "o", "--workers", "2"], "use --actors"),
        (["x.mp4", "--engine", "ray", "--out", "o", "--device", "cuda"], "--gpus-per-actor"),
        (["x.mp4", "--actors", "2"], "argument --actors: only with --engine ray"),
        (["x.mp4", "--address", "auto"], "argument --address: only with --engine ray"),
        (["x.mp4", "--format", "parquet"], "parquet only with --engine ray"),
        (["x.mp4", "--engine", "ray", "--out", "o", "--gpus-per-actor", "1.5"], "whole number"),
    ],
)
def test_engine_flag_mistakes_are_usage_errors(args, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        predict_main(args)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


# --- on a local Ray instance ---------------------------------------------------------------------


@pytest.mark.slow
def test_folder_records_equal_the_local_engine(ray_instance, media, tmp_path):
    out = tmp_path / "results"
    argv = [str(media.folder), "--audio-only", str(media.voice), "--engine", "ray"]
    code = predict_main([*argv, "--out", str(out), "--num-frames", "4", "--no-progress"])
    assert code == 1  # the corrupt clip failed, the others were scored
    records = read_jsonl(out / "records.jsonl")
    jobs = expand_inputs([str(media.folder)], audios=[str(media.voice)])
    local = local_records(jobs)
    assert_same_records(records, local)
    by_name = {Path(r["source"]).name: r for r in records}
    assert by_name["broken.mp4"]["error_type"] == "UnsupportedMediaError"
    assert by_name["a.mp4"]["modalities"] == ["image", "audio"]
    assert by_name["silent.mp4"]["modalities"] == ["image"]  # no sound: the face alone
    assert by_name["noface.mp4"]["modalities"] == ["audio"]  # no face: the voice alone
    assert by_name["voice.wav"]["modalities"] == ["audio"]


@pytest.mark.slow
def test_inputs_missing_a_modality_give_error_records(ray_instance, media, tmp_path):
    from mmdeepfake.scale.predict import score_to

    jobs = expand_inputs([str(media.folder / n) for n in ("noface.mp4", "silent.mp4")])
    options = {**OPTIONS, "require": "both"}
    summary = score_to(jobs, str(tmp_path), model=MODEL, options=options)
    records = read_jsonl(tmp_path / "records.jsonl")
    assert summary.records == 2 and len(summary.failed) == 2
    assert_same_records(records, local_records(jobs, require="both"))
    types = {Path(r["source"]).name: r["error_type"] for r in records}
    assert types == {"noface.mp4": "NoFaceFoundError", "silent.mp4": "NoAudioTrackError"}


@pytest.mark.slow
def test_s3_prefix_to_s3_parquet_is_complete(ray_instance, media, s3_bucket):
    import pyarrow.parquet as pq

    from mmdeepfake.scale.predict import score_to

    client = s3_bucket.server.client()
    for name in ("a.mp4", "silent.mp4", "broken.mp4"):
        body = (media.folder / name).read_bytes()
        client.put_object(Bucket=s3_bucket.name, Key=f"incoming/{name}", Body=body)
    jobs = expand_inputs([s3_bucket.uri("incoming/")], endpoint_url=s3_bucket.endpoint_url)
    summary = score_to(
        jobs,
        s3_bucket.uri("results/"),
        model=MODEL,
        fmt="parquet",
        endpoint_url=s3_bucket.endpoint_url,
        options=OPTIONS,
    )
    assert summary.uri == s3_bucket.uri("results/records.parquet")
    assert s3_bucket.keys("results/") == ["results/records.parquet"]
    body = client.get_object(Bucket=s3_bucket.name, Key="results/records.parquet")["Body"]
    table = pq.read_table(io.BytesIO(body.read()))
    assert table.num_rows == 3  # one record per input, the failed one included
    records = [json.loads(text) for text in table.column("record").to_pylist()]
    assert table.column("source").to_pylist() == [r["source"] for r in records]
    assert table.column("label").to_pylist() == [r.get("label") for r in records]
    local = list(score_jobs(jobs, MODEL, endpoint_url=s3_bucket.endpoint_url, options=OPTIONS))
    assert_same_records(records, local)
    assert [r["error_type"] for r in records if r["error"]] == ["UnsupportedMediaError"]


def dies_once(model: str, device: str, endpoint_url: str | None, *, marker: str) -> Any:
    """A loader whose detector's process exits while scoring, the first time any actor scores
    while ``marker`` exists (it removes the marker first, so it happens once)."""
    detector = load_on_device(model, device, endpoint_url)
    pipeline = detector.pipeline
    score = pipeline.score_gathered

    def score_or_die(gathered, **options):
        try:
            os.unlink(marker)
        except FileNotFoundError:
            return score(gathered, **options)
        os._exit(1)

    pipeline.score_gathered = score_or_die
    return SimpleNamespace(pipeline=pipeline, model_info=detector.model_info)


@pytest.mark.slow
def test_killed_actor_is_replaced_and_its_inputs_retried(ray_instance, media, tmp_path):
    from mmdeepfake.scale.predict import score_to

    marker = tmp_path / "die-once"
    marker.touch()
    jobs = expand_inputs([str(media.folder / n) for n in ("a.mp4", "silent.mp4")])
    loader = functools.partial(dies_once, marker=str(marker))
    summary = score_to(jobs, str(tmp_path / "out"), model=MODEL, options=OPTIONS, loader=loader)
    assert not marker.exists()  # an actor did die
    assert summary.failed == []
    assert_same_records(read_jsonl(tmp_path / "out" / "records.jsonl"), local_records(jobs))


@pytest.mark.slow
def test_score_dataset_reads_rows_that_carry_their_media(ray_instance, media):
    from mmdeepfake.batch import score_dataset

    ds = ray_instance.data.read_binary_files(str(media.folder / "a.mp4"), include_paths=True)
    # Read first: on 2 cores the read task would wait for a core the two stages' actors hold.
    (row,) = score_dataset(ds.materialize(), MODEL, options=OPTIONS).take_all()
    record = json.loads(row["record"])
    assert row["source"].endswith("a.mp4") and row["error"] is None
    assert row["label"] == record["label"] and row["fake_probability"] == record["fake_probability"]
    (local,) = local_records(expand_inputs([str(media.folder / "a.mp4")]))
    assert record["fake_probability"] == pytest.approx(local["fake_probability"], abs=1e-5)


@pytest.mark.slow
def test_score_dataset_without_a_source_column_is_refused(ray_instance):
    from mmdeepfake.batch import score_dataset

    with pytest.raises(ConfigError, match="'source'"):
        score_dataset(ray_instance.data.from_items([{"video": "a.mp4"}]), MODEL)


@pytest.mark.slow
@pytest.mark.parametrize(
    "settings, message",
    [
        ({"gpus_per_actor": 0.5}, "the Ray cluster has no GPU"),
        ({"actors": 2}, "room for at most 1 model actors"),
    ],
)
def test_what_the_instance_cannot_run_is_refused_and_leaves_no_file(
    ray_instance, media, tmp_path, settings, message
):
    from mmdeepfake.scale.predict import score_to

    jobs = expand_inputs([str(media.folder / "a.mp4")])
    with pytest.raises(ConfigError, match=message):
        score_to(jobs, str(tmp_path / "out"), model=MODEL, **settings)
    assert list((tmp_path / "out").iterdir()) == []
