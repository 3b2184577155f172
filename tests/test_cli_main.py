"""`mmdeepfake COMMAND`: the one command gives each stage's result exactly as its alias does.

Every subcommand runs for real, once through ``mmdeepfake X`` and once through the older
``mmdeepfake-X`` entry point, on a small synthetic dataset, and the values they write are
compared. The training flags are checked field by field against ``TrainConfig``: each field
has a flag, and a flag beats the YAML value in the configuration the run saves.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml
from PIL import Image

from mmdeepfake import __version__
from mmdeepfake.cli import evaluate, predict, sweep, synth, train
from mmdeepfake.cli.main import COMMANDS, main
from mmdeepfake.train.config import TrainConfig
from tiny_models import TINY_ARCH

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    from mmdeepfake.data.storage import open_storage
    from mmdeepfake.data.synth import generate_dataset

    root = tmp_path_factory.mktemp("synthetic")
    generate_dataset(open_storage(root), clips=10, seed=5, variant="consistency", progress=False)
    return root


def _files(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


# --- the command itself ---------------------------------------------------------------------


def test_help_lists_every_command_with_its_summary_and_version(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name, command in COMMANDS.items():
        assert f"  {name:<10}{command.summary}" in out
    assert set(COMMANDS) == {"predict", "train", "evaluate", "sweep", "prepare", "synth"}

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"mmdeepfake {__version__}"

    assert main([]) == 2  # no command: the help, on stderr, and a usage status
    assert "commands:" in capsys.readouterr().err
    assert main(["nonsense"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: argument COMMAND: invalid choice: 'nonsense'")


def test_python_dash_m_runs_the_command():
    result = subprocess.run(
        [sys.executable, "-m", "mmdeepfake", "--version"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"mmdeepfake {__version__}"


def test_a_subcommand_names_itself_in_its_messages(capsys):
    assert main(["synth", "--output", "x", "--clips", "0"]) == 2
    assert capsys.readouterr().err == (
        "error: argument --clips: must be at least 1, got 0 (see mmdeepfake synth --help)\n"
    )
    assert synth.main(["--out", "x", "--clips", "0"]) == 2
    assert "(see mmdeepfake-synth --help)" in capsys.readouterr().err


# --- each subcommand, through the command and through its alias -----------------------------


@pytest.mark.slow
def test_synth_writes_the_same_dataset_and_verbosity_sets_the_log_level(tmp_path, capsys):
    small = ["--clips", "10", "--seed", "3", "--no-progress"]
    assert main(["synth", "--output", str(tmp_path / "one"), *small]) == 0
    quiet_err = capsys.readouterr().err
    assert synth.main(["--out", str(tmp_path / "two"), *small, "-v"]) == 0
    verbose_err = capsys.readouterr().err
    one, two = _files(tmp_path / "one"), _files(tmp_path / "two")
    assert one == two and "labels/clips.csv" in one

    # synth reports at warning level by default; -v shows its INFO summary line, -q nothing.
    assert "INFO" not in quiet_err
    assert "INFO mmdeepfake.data.synth: wrote" in verbose_err
    assert main(["synth", "--output", str(tmp_path / "three"), *small, "-q"]) == 0
    assert capsys.readouterr().err == ""


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    from mmdeepfake.data.synth_face import draw_face
    from mmdeepfake.data.synth_voice import synth_voice

    folder = tmp_path_factory.mktemp("pair")
    rng = np.random.default_rng(1)
    Image.fromarray(draw_face("sad", rng)).save(folder / "face.png")
    sf.write(folder / "voice.wav", synth_voice("happy", rng, seconds=3.0), 16000)
    return folder / "face.png", folder / "voice.wav"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    import torch

    from mmdeepfake.detector import Detector

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("model")
    Detector(fusion="mid", temperature=2.0, threshold=0.5, **TINY_ARCH).save_pretrained(folder)
    return folder


@pytest.mark.slow
def test_predict_gives_the_same_records_and_output_keeps_its_out_alias(
    pair, model_dir, tmp_path, capsys
):
    face, voice = (str(p) for p in pair)
    args = [
        "--pair",
        face,
        voice,
        "--image-only",
        face,
        "--model",
        str(model_dir),
        "--format",
        "jsonl",
        "--no-progress",
    ]
    assert main(["predict", *args, "--output", str(tmp_path / "one.jsonl")]) == 0
    assert predict.main([*args, "--out", str(tmp_path / "two.jsonl")]) == 0
    capsys.readouterr()
    one, two = (
        [
            {k: v for k, v in json.loads(line).items() if k != "timings"}  # wall times
            for line in (tmp_path / name).read_text().splitlines()
        ]
        for name in ("one.jsonl", "two.jsonl")
    )
    assert len(one) == 2 and one == two
    assert [r["source"] for r in one] == [face, face]
    assert 0.0 < one[0]["fake_probability"] < 1.0 and one[0]["error"] is None


@pytest.mark.slow
def test_evaluate_writes_the_same_metrics(dataset, model_dir, tmp_path, capsys):
    args = ["--model", str(model_dir), "--data", str(dataset), "--no-progress", "-q"]
    assert main(["evaluate", *args, "--output", str(tmp_path / "one")]) == 0
    out_one = capsys.readouterr().out
    assert evaluate.main([*args, "--out", str(tmp_path / "two")]) == 0
    out_two = capsys.readouterr().out
    one = json.loads((tmp_path / "one" / "metrics.json").read_text())
    two = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert one["metrics"]["roc_auc"] == two["metrics"]["roc_auc"]
    assert one["metrics"]["n"] == two["metrics"]["n"] > 0
    # The printed table is the same but for the output folder on its last line.
    assert out_one.splitlines()[:-1] == out_two.splitlines()[:-1]


def _quick_config(folder: Path) -> Path:
    """A YAML config whose values the flags below override: the tiny preset, made quicker."""
    values = yaml.safe_load((REPO / "src/mmdeepfake/presets/tiny.yaml").read_text())
    values.update(
        lr=0.001, weight_decay=0.0002, max_steps_per_epoch=5, plots=True, batch_size=4, seed=1
    )
    path = folder / "quick.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


@pytest.mark.slow
def test_train_gives_the_same_run_and_saves_the_flags_over_the_yaml(dataset, tmp_path, capsys):
    config = _quick_config(tmp_path)
    args = [
        "--data",
        str(dataset),
        "--config",
        str(config),
        "--lr",
        "0.005",
        "--max-steps-per-epoch",
        "2",
        "--no-plots",
        "--model",
        "{embed_dim: 16}",
        "--no-progress",
    ]
    assert main(["train", *args, "--output", str(tmp_path / "one"), "--run-id", "r", "-q"]) == 0
    quiet_err = capsys.readouterr().err
    assert train.main([*args, "--out", str(tmp_path / "two"), "--run-id", "r"]) == 0
    default_err = capsys.readouterr().err

    one = json.loads((tmp_path / "one/r/logs/summary.json").read_text())
    two = json.loads((tmp_path / "two/r/logs/summary.json").read_text())
    assert one["best"]["val_loss"] == pytest.approx(two["best"]["val_loss"], rel=1e-5)
    assert one["best"]["epoch"] == two["best"]["epoch"] == 1

    saved = one["config"]
    assert saved == {**two["config"], "output": str(tmp_path / "one")}
    # Flags beat the YAML; what no flag sets keeps the YAML's value.
    assert saved["lr"] == 0.005 and saved["max_steps_per_epoch"] == 2
    assert saved["plots"] is False and not (tmp_path / "one/r/plots").exists()
    assert saved["weight_decay"] == 0.0002 and saved["batch_size"] == 4 and saved["seed"] == 1
    assert saved["model"]["embed_dim"] == 16
    assert saved["model"]["image_encoder_kwargs"] == {"width": 8}  # merged, not replaced

    # train reports at info level by default; -q keeps warnings only.
    assert "INFO mmdeepfake.train" in default_err
    assert "INFO" not in quiet_err


@pytest.mark.slow
def test_sweep_gives_the_same_results(dataset, tmp_path, capsys):
    config = _quick_config(tmp_path)
    args = [
        "--param",
        "lr",
        "--values",
        "0.002",
        "--test-split",
        "none",
        "--data",
        str(dataset),
        "--config",
        str(config),
        "--max-steps-per-epoch",
        "1",
        "--no-plots",
        "-q",
        "--no-progress",
    ]
    assert main(["sweep", *args, "--output", str(tmp_path / "one"), "--sweep-id", "s"]) == 0
    assert sweep.main([*args, "--out", str(tmp_path / "two"), "--sweep-id", "s"]) == 0
    capsys.readouterr()
    one = json.loads((tmp_path / "one/sweeps/s/results.json").read_text())
    two = json.loads((tmp_path / "two/sweeps/s/results.json").read_text())
    (row_one,), (row_two,) = one["rows"], two["rows"]
    assert row_one["value"] == row_two["value"] == 0.002
    assert row_one["val_loss"] == pytest.approx(row_two["val_loss"], rel=1e-5)


# --- training flags come from TrainConfig ---------------------------------------------------

# (YAML value, flag arguments, the value the flag must leave in the resolved config)
_SPECIAL = {
    "fusion": ("late", ["--fusion", "attention"], "attention"),
    "model": (
        {"embed_dim": 8, "fusion_kwargs": {}},
        ["--model", "{embed_dim: 24}"],
        {"embed_dim": 24, "fusion_kwargs": {}},
    ),
    "endpoint_url": (
        "http://127.0.0.1:1",
        ["--endpoint-url", "http://127.0.0.1:2"],
        "http://127.0.0.1:2",
    ),
    "data_dir": ("a", ["--data", "b"], "b"),
    "output": ("a", ["--out", "b"], "b"),
    "s3_reader": ("boto3", ["--s3-reader", "s3torchconnector"], "s3torchconnector"),
    "device": ("auto", ["--device", "cpu"], "cpu"),
    "memory_budget": ("2GB", ["--memory-budget", "3GB"], "3GB"),
    "plots": (True, ["--no-plots"], False),
    "dropout": (0.1, ["--dropout", "0.25"], 0.25),
    "min_batch_size": (2, ["--min-batch-size", "3"], 3),
}
_BY_TYPE = {"int": (5, "7", 7), "float": (0.5, "0.75", 0.75), "str": ("a", "b", "b")}


def _override_case(spec: dataclasses.Field) -> tuple[object, list[str], object]:
    if spec.name in _SPECIAL:
        return _SPECIAL[spec.name]
    in_yaml, text, value = _BY_TYPE[str(spec.type).replace(" | None", "")]
    return in_yaml, [f"--{spec.name.replace('_', '-')}", text], value


@pytest.mark.parametrize("spec", dataclasses.fields(TrainConfig), ids=lambda f: f.name)
def test_every_config_field_has_a_flag_that_beats_the_yaml(spec, tmp_path):
    in_yaml, flag, expected = _override_case(spec)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({spec.name: in_yaml}))
    parser = train.build_parser()

    from_yaml = train.config_from_args(parser.parse_args(["--config", str(config)]))
    assert getattr(from_yaml, spec.name) == in_yaml

    resolved = train.config_from_args(parser.parse_args(["--config", str(config), *flag]))
    assert resolved.to_dict()[spec.name] == expected  # what the run saves in summary.json

    alone = train.config_from_args(parser.parse_args(flag))  # without --config
    expected_alone = {"embed_dim": 24} if spec.name == "model" else expected
    assert alone.to_dict()[spec.name] == expected_alone


def test_every_flag_is_a_config_field_or_a_command_option():
    dests = {a.dest for a in train.build_parser()._actions}
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    assert len(fields) == 29 and fields <= dests
    assert dests - fields == {"help", "verbose", "quiet", "config", "no_progress"}


def test_the_old_training_flag_spellings_still_work():
    args = train.build_parser().parse_args(
        [
            "--bucket",
            "b",
            "--prefix",
            "p/",
            "--endpoint-url",
            "http://h:9",
            "--output",
            "o",
            "--fusion",
            "all",
            "--epochs",
            "2",
            "--batch-size",
            "8",
            "--lr",
            "0.01",
            "--dropout",
            "0",
            "--memory-budget",
            "3GB",
            "--resume",
            "latest",
            "--push-to-hub",
            "me/model",
        ]
    )
    config = train.config_from_args(args)
    assert (
        config.bucket,
        config.prefix,
        config.endpoint_url,
        config.output,
        config.fusion,
        config.epochs,
        config.batch_size,
        config.lr,
        config.dropout,
        config.memory_budget,
        config.resume,
        config.push_to_hub,
    ) == ("b", "p/", "http://h:9", "o", "all", 2, 8, 0.01, 0.0, "3GB", "latest", "me/model")
    assert train.config_from_args(train.build_parser().parse_args(["--data", "d"])).data_dir == "d"


def test_a_bad_flag_value_is_a_usage_error_naming_the_flag(capsys):
    assert train.main(["--model", "[1, 2]"]) == 2
    assert "argument --model: '[1, 2]' is not a YAML mapping" in capsys.readouterr().err
    assert main(["train", "--endpoint-url", "localhost"]) == 2
    err = capsys.readouterr().err
    assert "argument --endpoint-url: 'localhost' is not an http(s) URL" in err
    assert "(see mmdeepfake train --help)" in err
