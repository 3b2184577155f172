"""Training from a real local S3 server (moto, started by the s3_server fixture), tiny preset.

Covers: one epoch end to end with every artifact checked in the bucket and nothing of the
dataset on local disk; a corrupt object skipped and counted; resume after SIGKILL; a clean stop
on SIGTERM; start-up errors (missing bucket, bad credentials, missing prefix) without a
traceback; the memory guard; 2 ranks under torchrun on CPU; --fusion all; the Hub push with
the client replaced by a recorder (the Hub is not reachable here).
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import ClassVar

import pytest

from mmdeepfake.data.storage import open_storage
from mmdeepfake.errors import CheckpointError, ConfigError, MemoryBudgetError
from mmdeepfake.train.artifacts import checkpoint_from_bytes, checkpoint_to_bytes
from mmdeepfake.train.config import TrainConfig, parse_size
from mmdeepfake.train.memory import MemoryGuard

pytestmark = pytest.mark.slow

DATASET_SUFFIXES = {".png", ".jpg", ".jpeg", ".wav", ".flac", ".mp3", ".ogg", ".mp4"}
CLIPS = 14  # in all splits: 10 train, 2 validate, 2 test clips of 4 frames each
TRAIN_PLOTS = (
    "01_data_distribution",
    "02_audio_samples",
    "03_image_samples",
    "04_loss_curves",
    "05_accuracy_curves",
    "06_emotion_consistency_heatmap",
    "07_confusion_matrix",
    "15_memory_usage",
    "20_reliability_diagram",
)


# --- helpers ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def synthetic_files(tmp_path_factory) -> dict[str, bytes]:
    """A small synthetic dataset (consistency variant), generated once per module."""
    from mmdeepfake.data.synth import generate_dataset

    root = tmp_path_factory.mktemp("synthetic")
    generate_dataset(open_storage(root), clips=CLIPS, seed=3, variant="consistency")
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.fixture()
def s3_dataset(s3_bucket, synthetic_files):
    """The synthetic dataset uploaded under s3://bucket/dataset/ of a fresh bucket."""
    client = s3_bucket.server.client()
    for key, data in synthetic_files.items():
        client.put_object(Bucket=s3_bucket.name, Key=f"dataset/{key}", Body=data)
    return s3_bucket


def _train_args(bucket, *extra: str) -> list[str]:
    return [
        "--bucket",
        bucket.name,
        "--endpoint-url",
        bucket.endpoint_url,
        "--config",
        "tiny",
        "--no-progress",
        *extra,
    ]


def _run_id(bucket) -> str:
    runs = {k.split("/")[1] for k in bucket.keys("outputs/")}
    assert len(runs) == 1, runs
    return runs.pop()


def _read(bucket, key: str) -> bytes:
    return bucket.server.client().get_object(Bucket=bucket.name, Key=key)["Body"].read()


def _subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[1] / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = "1"
    return env


def _dataset_files_under(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in DATASET_SUFFIXES]


# --- pure units -------------------------------------------------------------------------------


def test_config_precedence_and_errors(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(
        "data:\n  bucket: seed-bucket\ntraining:\n  batch_size: 4\n  epochs: 7\nlr: 3e-4\n"
    )
    config = TrainConfig.from_sources(str(path), {"epochs": 2, "lr": None})
    assert (config.bucket, config.batch_size, config.epochs, config.lr) == (
        "seed-bucket",
        4,
        2,
        3e-4,
    )
    assert TrainConfig.from_sources("tiny").model["embed_dim"] == 32
    assert parse_size("3GB") == 3 * 1024**3 and parse_size("512mb") == 512 * 1024**2
    for bad in ({"epochs": 0}, {"fusion": "sideways"}, {"memory_budget": "lots"}, {"colour": 1}):
        with pytest.raises(ConfigError):
            TrainConfig.from_dict(bad)
    with pytest.raises(ConfigError, match="preset"):
        TrainConfig.from_sources("no-such-preset")


def test_config_and_loss_share_their_default_weights():
    from mmdeepfake.losses import DetectionLoss

    config, loss = TrainConfig(), DetectionLoss()
    assert (
        (config.emotion_weight, config.consistency_weight, config.margin)
        == (loss.emotion_weight, loss.consistency_weight, loss.margin)
        == (1.0, 0.5, 0.5)
    )


def test_a_registered_fusion_can_be_trained_and_an_unknown_one_cannot():
    from mmdeepfake.fusion import FUSIONS, register_fusion
    from mmdeepfake.fusion.mid import MidFusion
    from mmdeepfake.train.config import FUSION_CHOICES, fusion_choices

    assert FUSION_CHOICES == fusion_choices() == ("early", "mid", "late", "adaptive", "attention")
    with pytest.raises(ConfigError, match="unknown fusion 'mine'"):
        TrainConfig(fusion="mine")
    register_fusion("mine")(MidFusion)
    try:
        assert TrainConfig(fusion="mine").fusion == "mine"
        assert fusion_choices()[-1] == "mine"
    finally:
        FUSIONS._builders.pop("mine")


def test_fusion_all_is_the_sweep_not_one_run(tmp_path):
    from mmdeepfake.train.trainer import train

    with pytest.raises(ConfigError, match="mmdeepfake.sweep.train_every_fusion"):
        train(TrainConfig(fusion="all", data_dir=str(tmp_path)))


def test_memory_guard_halves_batch_then_gives_up(caplog):
    usage = iter([500, 760, 900, 900, 900, 900, 900, 900, 900])
    guard = MemoryGuard(8, budget_bytes=1000, min_batch_size=1, rss_fn=lambda: next(usage))
    assert (guard.cap_bytes, guard.target_bytes) == (800, 700)
    sizes = [guard.check(step) for step in range(5)]
    assert sizes == [8, 4, 2, 1, 1]  # 760 > aim, then above the cap at every step
    assert [c[1:] for c in guard.changes] == [(8, 4), (4, 2), (2, 1)]
    assert "batch size 8 -> 4" in caplog.text
    with pytest.raises(MemoryBudgetError, match="checkpoint was saved"):
        for step in range(5, 9):
            guard.check(step)
    lines = guard.to_csv().splitlines()
    assert lines[0].startswith("step,time_s,rss_bytes,batch_size")
    assert len(lines) == 1 + len(guard.samples)


def test_memory_guard_does_not_halve_on_flat_usage():
    usage = iter([750, 750, 752, 751, 790])  # above the aim: flat, then climbing again
    guard = MemoryGuard(16, budget_bytes=1000, rss_fn=lambda: next(usage))
    assert [guard.check(s) for s in range(5)] == [8, 8, 8, 8, 4]


def test_shards_do_not_overlap_across_ranks_and_workers():
    from mmdeepfake.data.streaming import shard_indices

    seen = []
    for rank in range(2):
        for worker in range(2):
            seen += shard_indices(
                23,
                epoch=1,
                seed=0,
                shuffle=True,
                rank=rank,
                world_size=2,
                worker=worker,
                num_workers=2,
            )
    assert len(seen) == len(set(seen)) == 22  # trimmed to equal rank shares (11 each)
    full = shard_indices(23, epoch=1, seed=0, shuffle=True, rank=1, world_size=2, equal=False)
    assert len(full) == 11 and shard_indices(
        23, epoch=2, seed=0, shuffle=True, rank=0, world_size=1
    ) != list(range(23))


def test_checkpoint_loads_weights_only_and_refuses_pickled_objects():
    import torch

    data = checkpoint_to_bytes({"epoch": 2, "model": {"w": torch.ones(2)}, "rng": {}})
    assert checkpoint_from_bytes(data, "mem")["epoch"] == 2
    buf = io.BytesIO()
    torch.save({"format": 1, "payload": Path("/etc/passwd")}, buf)  # an arbitrary object
    with pytest.raises(CheckpointError, match="cannot load"):
        checkpoint_from_bytes(buf.getvalue(), "evil.pt")


def test_stream_from_s3_with_worker_processes_reads_each_sample_once(s3_dataset):
    from mmdeepfake.data.layout import pair_samples, scan_dataset
    from mmdeepfake.data.streaming import build_split_loader

    storage = open_storage(s3_dataset.uri(), endpoint_url=s3_dataset.endpoint_url)
    index = scan_dataset(storage, "dataset/")
    samples = pair_samples(index, "validate", 0)
    loader = build_split_loader(
        storage, index, "validate", 4, num_workers=2, prefetch=4, samples=samples
    )
    keys = [k for batch in loader for k in batch["image_keys"]]
    assert sorted(keys) == sorted(s.image_key for s in samples)
    batch = next(iter(loader))
    assert tuple(batch["faces"].shape[1:]) == (3, 224, 224) and batch["waves"].ndim == 2


# --- end to end -------------------------------------------------------------------------------


class _RecordingHfApi:
    """Stands in for huggingface_hub.HfApi: the Hub is not reachable from the tests."""

    calls: ClassVar[list[tuple]] = []

    def __init__(self, token=None):
        self.token = token

    def create_repo(self, repo_id, **kwargs):
        self.calls.append(("create_repo", repo_id, kwargs))

    def upload_folder(self, *, folder_path, repo_id, **kwargs):
        files = {p.name: p.read_bytes() for p in Path(folder_path).iterdir()}
        self.calls.append(("upload_folder", repo_id, files))


def test_one_epoch_from_s3_writes_every_artifact_and_nothing_local(
    s3_dataset, tmp_path, monkeypatch, capsys
):
    from mmdeepfake.cli.train import main

    # One face image of the training split is corrupt: it must be skipped and counted.
    storage = open_storage(s3_dataset.uri(), endpoint_url=s3_dataset.endpoint_url)
    bad = next(k for k in storage.list("dataset/frames/train/real/"))
    storage.write_bytes(bad, b"\x89PNG\r\n\x1a\n this is not an image")

    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setattr(tempfile, "tempdir", str(work))
    monkeypatch.setenv("HF_TOKEN", "hf_test_token")
    import huggingface_hub

    _RecordingHfApi.calls = []
    monkeypatch.setattr(huggingface_hub, "HfApi", _RecordingHfApi)

    code = main(_train_args(s3_dataset, "--epochs", "1", "--push-to-hub", "someone/detector"))
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "1 sample(s) skipped" in out

    run = _run_id(s3_dataset)
    keys = set(s3_dataset.keys(f"outputs/{run}/"))
    base = f"outputs/{run}/"
    expected = {
        "models/checkpoints/epoch_0001.pt",
        "models/checkpoints/latest.json",
        "models/best/config.json",
        "models/best/model.safetensors",
        "models/best/README.md",
        "logs/train.log",
        "logs/metrics.csv",
        "logs/summary.json",
        "intermediate/val_predictions.csv",
        "intermediate/memory.csv",
        *(f"plots/{name}.png" for name in TRAIN_PLOTS),
    }
    assert {base + k for k in expected} <= keys, sorted(keys)
    for name in TRAIN_PLOTS:
        assert _read(s3_dataset, f"{base}plots/{name}.png")[:8] == b"\x89PNG\r\n\x1a\n"

    log_text = _read(s3_dataset, base + "logs/train.log").decode()
    assert f"skipped a bad train sample: {bad} (CorruptMediaError" in log_text
    assert "true pairs (shared clip id)" in log_text
    assert "ECE" in log_text
    summary = json.loads(_read(s3_dataset, base + "logs/summary.json"))
    assert summary["skipped_samples"] == 1
    metrics = _read(s3_dataset, base + "logs/metrics.csv").decode().splitlines()
    assert metrics[0].startswith("epoch,train_loss,val_loss") and len(metrics) == 2
    predictions = _read(s3_dataset, base + "intermediate/val_predictions.csv").decode()
    assert "face_emotion_pred" in predictions.splitlines()[0]
    assert len(predictions.splitlines()) > 1
    memory = _read(s3_dataset, base + "intermediate/memory.csv").decode().splitlines()
    assert len(memory) > 1

    # The checkpoint loads with weights_only; the best model is a calibrated Detector folder.
    state = checkpoint_from_bytes(
        _read(s3_dataset, base + "models/checkpoints/epoch_0001.pt"), "epoch_0001.pt"
    )
    assert state["epoch"] == 1 and {"model", "optimizer", "scheduler", "rng"} <= set(state)
    config = json.loads(_read(s3_dataset, base + "models/best/config.json"))
    assert config["temperature"] > 0
    assert config["temperature"] == summary["calibration"]["temperature"]
    assert "ece_after" in config["metadata"]["calibration"]

    # Nothing of the dataset was written to local disk (cwd and temp dir of the run).
    assert _dataset_files_under(work) == []

    # The push went to the (recorded) Hub with the model card.
    (_, repo, _), (_, repo2, files) = _RecordingHfApi.calls
    assert repo == repo2 == "someone/detector"
    assert {"config.json", "model.safetensors", "README.md"} <= set(files)
    card = files["README.md"].decode()
    for section in (
        "## Architecture",
        "## Data",
        "## Validation metrics",
        "Intended use",
        "## Limits",
        "Fusion: `mid`",
        "val_auc",
        "someone/detector",
    ):
        assert section in card


def test_startup_errors_are_clear_and_have_no_traceback(s3_dataset, capsys):
    from mmdeepfake.cli.train import main

    code = main(
        [
            "--bucket",
            "no-such-bucket-here",
            "--endpoint-url",
            s3_dataset.endpoint_url,
            "--config",
            "tiny",
        ]
    )
    err = capsys.readouterr().err
    assert code != 0 and "no-such-bucket-here does not exist" in err and "Traceback" not in err

    code = main(_train_args(s3_dataset, "--prefix", "nothing-here/"))
    err = capsys.readouterr().err
    assert code != 0 and "no dataset found" in err and "Traceback" not in err

    with s3_dataset.server.enforce_credentials(), pytest.MonkeyPatch.context() as patch:
        patch.setenv("AWS_ACCESS_KEY_ID", "AKIAWRONGWRONGWRONG0")
        code = main(_train_args(s3_dataset))
    err = capsys.readouterr().err
    assert code != 0 and "refused the credentials" in err and "Traceback" not in err

    code = main(["--config", "tiny"])
    err = capsys.readouterr().err
    assert code != 0 and "--bucket" in err


def test_memory_budget_stops_cleanly_with_a_checkpoint(s3_dataset, caplog):
    from mmdeepfake.train.trainer import train

    config = TrainConfig.from_sources(
        "tiny",
        {
            "bucket": s3_dataset.name,
            "endpoint_url": s3_dataset.endpoint_url,
            "memory_budget": "64MB",
            "batch_size": 4,
            "plots": False,
        },
    )
    with pytest.raises(MemoryBudgetError, match="checkpoint was saved"):
        train(config, progress=False)
    assert "batch size 4 -> 2" in caplog.text and "batch size 2 -> 1" in caplog.text
    run = _run_id(s3_dataset)
    keys = s3_dataset.keys(f"outputs/{run}/")
    assert f"outputs/{run}/models/checkpoints/interrupted.pt" in keys
    memory = _read(s3_dataset, f"outputs/{run}/intermediate/memory.csv").decode().splitlines()
    assert [row.split(",")[3] for row in memory[1:4]] == ["4", "2", "1"]


def test_fusion_all_trains_every_strategy_and_compares(s3_dataset, tmp_path, capsys):
    from mmdeepfake.cli.train import main

    config = tmp_path / "quick.yaml"
    config.write_text("plots: false\nmax_steps_per_epoch: 1\nbatch_size: 4\n")
    code = main(
        [
            "--bucket",
            s3_dataset.name,
            "--endpoint-url",
            s3_dataset.endpoint_url,
            "--config",
            str(config),
            "--fusion",
            "all",
            "--epochs",
            "1",
            "--no-progress",
        ]
    )
    _, err = capsys.readouterr()
    assert code == 0, err
    keys = s3_dataset.keys("outputs/")
    comparison = [k for k in keys if k.endswith("logs/fusion_comparison.csv")]
    assert len(comparison) == 1
    rows = _read(s3_dataset, comparison[0]).decode().splitlines()
    names = {row.split(",")[0] for row in rows[1:]}
    assert {"early", "mid", "late", "adaptive", "attention"} <= names
    assert {"image only", "audio only"} <= names  # the unimodal heads of the late model


# --- processes: kill, resume, signals, torchrun -----------------------------------------------


class _Proc:
    """A training subprocess whose stderr is drained by a thread (so it never blocks)."""

    def __init__(self, cmd: list[str], cwd: Path) -> None:
        import threading

        self.popen = subprocess.Popen(
            cmd,
            env=_subprocess_env(),
            cwd=cwd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self.changed = threading.Condition()
        self.thread = threading.Thread(target=self._drain, daemon=True)
        self.thread.start()

    def _drain(self) -> None:
        for line in self.popen.stderr:
            with self.changed:
                self.lines.append(line)
                self.changed.notify_all()
        with self.changed:
            self.changed.notify_all()  # end of output: the process is exiting

    @property
    def stderr(self) -> str:
        return "".join(self.lines)

    def wait_for_line(self, text: str, timeout: float) -> None:
        """Block until a stderr line contains ``text``; fail if the process ends first.

        ``timeout`` only catches a hang: the wait ends on the line, not on the clock.
        """

        def seen_or_ended() -> bool:
            return any(text in line for line in self.lines) or not self.thread.is_alive()

        with self.changed:
            self.changed.wait_for(seen_or_ended, timeout=timeout)
        if not any(text in line for line in self.lines):
            raise AssertionError(
                f"training never printed {text!r} (exit {self.popen.poll()}): {self.stderr[-3000:]}"
            )

    def finish(self, timeout: float) -> int:
        code = self.popen.wait(timeout=timeout)
        self.thread.join(timeout=10)
        return code


def _train_cmd(bucket, *extra: str) -> list[str]:
    return [sys.executable, "-m", "mmdeepfake.cli.train", *_train_args(bucket, *extra)]


def _paused_train_cmd(bucket, checkpoint: str, *extra: str) -> list[str]:
    """The training command, held still right after it writes ``checkpoint``."""
    runner = str(Path(__file__).with_name("train_pause.py"))
    return [sys.executable, runner, checkpoint, "--", *_train_args(bucket, *extra)]


def test_resume_after_sigkill_continues_from_last_checkpoint(s3_dataset, tmp_path):
    cmd = _train_cmd(s3_dataset, "--epochs", "3", "--batch-size", "4")
    proc = _Proc(
        _paused_train_cmd(s3_dataset, "epoch_0001.pt", "--epochs", "3", "--batch-size", "4"),
        tmp_path,
    )
    try:
        proc.wait_for_line("paused after epoch_0001.pt", timeout=600)
    finally:
        proc.popen.send_signal(signal.SIGKILL)
        proc.finish(timeout=30)
    run = _run_id(s3_dataset)
    pointer = json.loads(_read(s3_dataset, f"outputs/{run}/models/checkpoints/latest.json"))
    assert pointer["epoch"] == 1

    result = subprocess.run(
        cmd + ["--resume", "latest"],
        env=_subprocess_env(),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,  # hang guards: a loaded runner is slow, never wrong
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"resumed run {run} from its checkpoint after epoch 1" in result.stderr
    metrics = _read(s3_dataset, f"outputs/{run}/logs/metrics.csv").decode().splitlines()
    assert [row.split(",")[0] for row in metrics[1:]] == ["1", "2", "3"]
    assert f"outputs/{run}/models/checkpoints/epoch_0003.pt" in s3_dataset.keys("outputs/")


def test_sigterm_saves_a_checkpoint_and_exits(s3_dataset, tmp_path):
    proc = _Proc(
        _paused_train_cmd(s3_dataset, "epoch_0001.pt", "--epochs", "5", "--batch-size", "2"),
        tmp_path,
    )
    try:
        proc.wait_for_line("paused after epoch_0001.pt", timeout=600)
    finally:
        proc.popen.send_signal(signal.SIGTERM)
        code = proc.finish(timeout=300)  # a guard against a hang, not a timing
    err = proc.stderr
    assert code == 130, err[-3000:]
    assert "stopped by SIGTERM during epoch 2" in err and "--resume" in err
    assert "Traceback" not in err
    run = _run_id(s3_dataset)
    key = f"outputs/{run}/models/checkpoints/interrupted.pt"
    assert key in s3_dataset.keys("outputs/")
    assert checkpoint_from_bytes(_read(s3_dataset, key), key)["epoch"] == 1


def test_torchrun_two_ranks_on_cpu(s3_dataset, tmp_path):
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        "-m",
        "mmdeepfake.cli.train",
        *_train_args(s3_dataset, "--epochs", "1", "--batch-size", "4"),
    ]
    result = subprocess.run(
        cmd,
        env=_subprocess_env(),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert "2 rank(s)" in result.stderr
    run = _run_id(s3_dataset)
    keys = s3_dataset.keys(f"outputs/{run}/")
    for name in (
        "models/best/model.safetensors",
        "models/checkpoints/epoch_0001.pt",
        "logs/metrics.csv",
        "plots/04_loss_curves.png",
    ):
        assert f"outputs/{run}/{name}" in keys
    log_text = _read(s3_dataset, f"outputs/{run}/logs/train.log").decode()
    assert log_text.count("run ") >= 1 and "[rank 1]" not in log_text
    assert _dataset_files_under(tmp_path) == []
