"""A resumed training run continues exactly where it stopped.

Resuming restores the weights, the optimiser's moments, the learning-rate schedule and the RNG
streams (dropout, pairing), so the epoch after the resume gives the same losses as the same
epoch of a run that was never interrupted. Checked from an epoch checkpoint (a crash right
after it was written), from the SIGTERM checkpoint, and with ``--resume RUN_ID`` through the
command line. Training runs in this process on a small local dataset; the interruptions happen
at a chosen point (after the first epoch's checkpoint), never after a guessed delay.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
import torch

from mmdeepfake.data.storage import open_storage
from mmdeepfake.data.synth import generate_dataset
from mmdeepfake.train import trainer
from mmdeepfake.train.artifacts import RunArtifacts, checkpoint_from_bytes
from mmdeepfake.train.config import TrainConfig
from mmdeepfake.train.fit import FitLoop

pytestmark = pytest.mark.slow

EPOCHS = 3
COMPARED = ("train_loss", "train_accuracy", "lr", "val_loss", "val_accuracy")


class Crash(RuntimeError):
    """Stands for the process dying right after a checkpoint was written."""


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("resume-data")
    generate_dataset(
        open_storage(root),
        clips=12,
        seed=5,
        variant="consistency",
        frames_per_clip=1,
        splits=(0.67, 0.33, 0.0),
    )
    return root


@pytest.fixture(scope="module")
def config_file(tmp_path_factory) -> Path:
    """The tiny preset, two short epochs: a file, so the command line can use it too."""
    from importlib import resources

    tiny = (resources.files("mmdeepfake") / "presets" / "tiny.yaml").read_text()
    path = tmp_path_factory.mktemp("config") / "short.yaml"
    path.write_text(
        f"{tiny}\nepochs: {EPOCHS}\nbatch_size: 4\nmax_steps_per_epoch: 2\n".replace(
            "epochs: 1\n", ""
        ).replace("batch_size: 8\n", "")
    )
    return path


def config(dataset: Path, config_file: Path, output: Path, **changes) -> TrainConfig:
    return TrainConfig.from_sources(
        str(config_file), {"data_dir": str(dataset), "output": str(output), **changes}
    )


def final_weights(output: Path, run_id: str) -> dict[str, torch.Tensor]:
    key = f"{run_id}/models/checkpoints/epoch_{EPOCHS:04d}.pt"
    return checkpoint_from_bytes(open_storage(output).read_bytes(key), key)["model"]


@pytest.fixture(scope="module")
def straight(dataset, config_file, tmp_path_factory):
    """The reference: both epochs without interruption."""
    output = tmp_path_factory.mktemp("straight")
    result = trainer.train(config(dataset, config_file, output, run_id="straight"), progress=False)
    assert [row["epoch"] for row in result.history] == list(range(1, EPOCHS + 1))
    return result, final_weights(output, "straight")


def assert_same_epochs(resumed, straight, output: Path) -> None:
    """Every epoch after the resume matches: the third one also checks the scheduler's state
    (the second one's learning rate comes back with the optimiser's)."""
    reference, weights = straight
    assert [row["epoch"] for row in resumed.history] == list(range(1, EPOCHS + 1))
    for name in COMPARED:
        for epoch in range(EPOCHS):
            assert resumed.history[epoch][name] == pytest.approx(
                reference.history[epoch][name], rel=1e-5, abs=1e-7
            ), (name, epoch + 1)
    # The loss and learning rate must move between epochs, or the comparison proves nothing.
    assert resumed.history[1]["train_loss"] != pytest.approx(resumed.history[0]["train_loss"])
    assert resumed.history[2]["lr"] < resumed.history[1]["lr"] < resumed.history[0]["lr"]
    resumed_weights = final_weights(output, resumed.run_id)
    for name, tensor in weights.items():
        torch.testing.assert_close(resumed_weights[name], tensor, rtol=1e-5, atol=1e-6)


def test_resume_latest_from_an_epoch_checkpoint(
    dataset, config_file, tmp_path, monkeypatch, straight
):
    save = RunArtifacts.save_checkpoint

    def save_then_crash(self, state, name):
        key = save(self, state, name)
        if name == "epoch_0001.pt":
            raise Crash(key)
        return key

    monkeypatch.setattr(RunArtifacts, "save_checkpoint", save_then_crash)
    with pytest.raises(Crash):
        trainer.train(config(dataset, config_file, tmp_path, run_id="crashed"), progress=False)
    monkeypatch.undo()

    resumed = trainer.train(config(dataset, config_file, tmp_path, resume="latest"), progress=False)
    assert resumed.run_id == "crashed"
    assert_same_epochs(resumed, straight, tmp_path)


def test_resume_run_id_from_the_sigterm_checkpoint(
    dataset, config_file, tmp_path, monkeypatch, straight, capsys
):
    from mmdeepfake.cli.train import main

    after_epoch = FitLoop._after_epoch

    def signal_after_first_epoch(self, epoch, row):
        after_epoch(self, epoch, row)
        if epoch == 0:
            signal.raise_signal(signal.SIGTERM)  # handled by the trainer: a clean stop

    monkeypatch.setattr(FitLoop, "_after_epoch", signal_after_first_epoch)
    with pytest.raises(trainer.TrainingInterrupted, match="SIGTERM"):
        trainer.train(config(dataset, config_file, tmp_path, run_id="stopped"), progress=False)
    monkeypatch.undo()
    storage = open_storage(tmp_path)
    pointer = storage.read_text("stopped/models/checkpoints/latest.json")
    assert "interrupted.pt" in pointer
    stopped = checkpoint_from_bytes(
        storage.read_bytes("stopped/models/checkpoints/interrupted.pt"), "interrupted.pt"
    )
    assert stopped["epoch"] == 1 and stopped["step_in_epoch"] == 0

    # The command line with --resume RUN_ID and the run's own settings.
    calls = []
    real_train = trainer.train
    monkeypatch.setattr(
        trainer, "train", lambda c, **kw: calls.append(real_train(c, **kw)) or calls[-1]
    )
    code = main(
        [
            "--data",
            str(dataset),
            "--output",
            str(tmp_path),
            "--config",
            str(config_file),
            "--resume",
            "stopped",
            "--no-progress",
        ]
    )
    assert code == 0, capsys.readouterr().err[-3000:]
    (resumed,) = calls
    assert resumed.run_id == "stopped"
    assert_same_epochs(resumed, straight, tmp_path)
