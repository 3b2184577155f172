"""mmdeepfake-evaluate and mmdeepfake-sweep end to end on a tiny synthetic dataset.

The dataset (a few clips, 2 frames each) and the models are tiny so the file runs in well under
three minutes on a 2-core CPU.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmdeepfake.reports import plots as P

torch = pytest.importorskip("torch")

from tiny_models import TINY_ARCH

pytestmark = pytest.mark.slow

EVAL_PLOT_FILES = [
    P.PLOT_FILENAMES[name]
    for name in (
        "confusion_matrix",
        "roc_curve",
        "precision_recall_curve",
        "f1_vs_threshold",
        "sensitivity_specificity",
        "prediction_distribution",
        "precision_recall_threshold",
        "feature_importance",
        "reliability_diagram",
    )
]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from mmdeepfake.data.storage import open_storage
    from mmdeepfake.data.synth import generate_dataset

    root = tmp_path_factory.mktemp("synthetic")
    generate_dataset(
        open_storage(root), clips=16, seed=3, frames_per_clip=2, splits=(0.5, 0.25, 0.25)
    )
    return root


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from mmdeepfake.detector import Detector

    torch.manual_seed(0)
    detector = Detector(fusion="mid", temperature=2.0, threshold=0.5, **TINY_ARCH)
    folder = tmp_path_factory.mktemp("model")
    detector.save_pretrained(folder)
    return folder


def _png_size(data: bytes) -> tuple[int, int]:
    return Image.open(io.BytesIO(data)).size


def test_score_split_blanks_and_permutes_without_changing_the_detector(dataset, model_dir):
    from mmdeepfake.detector import Detector
    from mmdeepfake.evaluate.evaluator import PERMUTATIONS, open_dataset, score_split

    detector = Detector.from_pretrained(model_dir)
    storage, index = open_dataset(data_dir=str(dataset))
    scores = score_split(detector, storage, index, "test", batch_size=4)
    n = len(scores)
    assert n == len(scores.image_keys) > 0
    assert set(scores.labels.tolist()) == {0, 1}
    for name in ("image head", "audio head", "face blanked", "voice blanked", *PERMUTATIONS):
        assert scores.variants[name].shape == (n,)
    # Blanking the face really changes the input: the scores move.
    assert not np.allclose(scores.variants["face blanked"], scores.logits)
    # The detector's plain forward on the same pairs gives the same fused logits.
    again = score_split(detector, storage, index, "test", batch_size=n)
    order = np.argsort(again.image_keys)
    np.testing.assert_allclose(np.sort(scores.logits), np.sort(again.logits), rtol=1e-4, atol=1e-5)
    assert sorted(scores.image_keys) == [again.image_keys[i] for i in order]
    assert not detector.training


def test_evaluate_writes_metrics_plots_and_report_to_a_folder(dataset, model_dir, tmp_path, capsys):
    from mmdeepfake.cli.evaluate import main

    out = tmp_path / "eval"
    code = main(
        [
            "--model",
            str(model_dir),
            "--data",
            str(dataset),
            "--split",
            "test",
            "--output",
            str(out),
            "--abstain",
            "0.6,0.8",
            "--batch-size",
            "4",
            "--no-progress",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "roc_auc" in printed and "abstain below" in printed and str(out) in printed

    summary = json.loads((out / "metrics.json").read_text())
    m = summary["metrics"]
    assert m["n"] == m["n_real"] + m["n_fake"] > 0
    assert 0.0 <= m["roc_auc"] <= 1.0 and 0.0 <= m["eer"] <= 1.0
    assert summary["temperature"] == pytest.approx(2.0)
    assert [r["bound"] for r in summary["abstention"]] == [0.6, 0.8]
    assert {r["name"] for r in summary["ablation"]} >= {
        "detector",
        "image head",
        "audio head",
        "face blanked",
        "voice blanked",
    }
    assert set(summary["feature_importance"]) >= {"face/voice pairing", "face emotion"}
    # The synthetic set labels every file's emotion, so both accuracies are measured.
    assert summary["emotion_accuracy"]["face"]["n_labelled"] == m["n"]
    assert 0.0 <= summary["emotion_accuracy"]["voice"]["accuracy"] <= 1.0

    rows = list(csv.DictReader(io.StringIO((out / "metrics.csv").read_text())))
    auc_row = next(r for r in rows if r["section"] == "detector" and r["metric"] == "roc_auc")
    assert float(auc_row["value"]) == pytest.approx(m["roc_auc"])
    predictions = list(csv.DictReader(io.StringIO((out / "predictions.csv").read_text())))
    assert len(predictions) == m["n"]
    # The calibrated probabilities in predictions.csv reproduce the headline AUC.
    from mmdeepfake.metrics import roc_auc

    y = [int(r["label"]) for r in predictions]
    p = [float(r["fake_probability"]) for r in predictions]
    assert roc_auc(y, p) == pytest.approx(m["roc_auc"], abs=1e-6)

    for name in EVAL_PLOT_FILES:
        data = (out / "plots" / name).read_bytes()
        assert _png_size(data) in {(880, 550), (1210, 605)}
    page = (out / "index.html").read_text()
    for name in EVAL_PLOT_FILES:
        assert f"plots/{name}" in page
    assert "Plotly.newPlot" in page and "Ablation" in page


def test_evaluate_writes_to_s3(dataset, model_dir, s3_bucket):
    from mmdeepfake.evaluate.evaluator import evaluate

    result = evaluate(
        str(model_dir),
        data_dir=str(dataset),
        split="validate",
        output=s3_bucket.uri("outputs/eval-1"),
        endpoint_url=s3_bucket.endpoint_url,
        batch_size=8,
    )
    assert result.output_uri == s3_bucket.uri("outputs/eval-1/")
    keys = s3_bucket.keys("outputs/eval-1/")
    for name in (
        "metrics.json",
        "metrics.csv",
        "predictions.csv",
        "index.html",
        *(f"plots/{f}" for f in EVAL_PLOT_FILES),
    ):
        assert f"outputs/eval-1/{name}" in keys
    body = s3_bucket.server.client().get_object(
        Bucket=s3_bucket.name, Key="outputs/eval-1/metrics.json"
    )
    assert json.loads(body["Body"].read())["split"] == "validate"


def test_evaluate_reads_a_model_and_data_from_s3(dataset, model_dir, s3_bucket):
    from mmdeepfake.data.storage import open_storage
    from mmdeepfake.evaluate.evaluator import evaluate

    bucket = open_storage(s3_bucket.uri(), endpoint_url=s3_bucket.endpoint_url)
    for path in Path(dataset).rglob("*"):
        if path.is_file():
            bucket.write_bytes("dataset/" + path.relative_to(dataset).as_posix(), path.read_bytes())
    for path in model_dir.iterdir():
        bucket.write_bytes(f"outputs/run-1/models/best/{path.name}", path.read_bytes())
    result = evaluate(
        s3_bucket.uri("outputs/run-1/models/best"),
        bucket=s3_bucket.name,
        endpoint_url=s3_bucket.endpoint_url,
        split="test",
        write=False,
    )
    assert result.output_uri is None
    assert result.summary["data"] == s3_bucket.uri("dataset/")
    assert result.summary["metrics"]["n"] > 0


def test_evaluate_cli_reports_user_errors_without_traceback(dataset, tmp_path, capsys):
    from mmdeepfake.cli.evaluate import main

    assert main(["--model", str(tmp_path / "missing"), "--data", str(dataset)]) != 0
    err = capsys.readouterr().err
    assert "error: model folder" in err and "does not exist" in err and "Traceback" not in err
    assert main(["--model", "starter", "--data", str(dataset), "--bucket", "b"]) != 0
    assert "not both" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        from mmdeepfake.cli.evaluate import build_parser

        build_parser().parse_args(["--model", "m", "--abstain", "0.3"])


def test_single_class_split_still_reports(dataset, model_dir):
    from mmdeepfake.detector import Detector
    from mmdeepfake.evaluate.evaluator import open_dataset, score_split, summarise

    detector = Detector.from_pretrained(model_dir)
    storage, index = open_dataset(data_dir=str(dataset))
    scores = score_split(detector, storage, index, "test", batch_size=8)
    keep = scores.labels == 1
    scores.labels, scores.logits = scores.labels[keep], scores.logits[keep]
    scores.consistency = scores.consistency[keep]
    scores.variants = {k: v[keep] for k, v in scores.variants.items()}
    for name in (
        "face_emotion_true",
        "face_emotion_pred",
        "voice_emotion_true",
        "voice_emotion_pred",
    ):
        setattr(scores, name, getattr(scores, name)[keep])
    scores.image_keys = [k for k, kept in zip(scores.image_keys, keep) if kept]
    scores.audio_keys = [k for k, kept in zip(scores.audio_keys, keep) if kept]
    summary = summarise(scores, temperature=1.0)
    assert (
        math.isnan(summary["metrics"]["roc_auc"]) and "only one class" in summary["metrics"]["note"]
    )
    assert all(math.isnan(v) for v in summary["feature_importance"].values())


def test_sweep_runs_two_values_on_the_tiny_preset(dataset, tmp_path, capsys):
    from mmdeepfake.cli.sweep import main

    out = tmp_path / "runs"
    code = main(
        [
            "--param",
            "fusion",
            "--values",
            "late,mid",
            "--sweep-id",
            "sw1",
            "--data",
            str(dataset),
            "--config",
            "tiny",
            "--epochs",
            "1",
            "--output",
            str(out),
            "--no-progress",
            "--quiet",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "sweep sw1 over fusion" in printed and "late" in printed and "mid" in printed
    folder = out / "sweeps" / "sw1"
    result = json.loads((folder / "results.json").read_text())
    assert [r["value"] for r in result["rows"]] == ["late", "mid"]
    for row in result["rows"]:
        assert row["run_id"] == f"sw1-fusion-{row['value']}"
        assert row["val_auc"] is None or 0.0 <= row["val_auc"] <= 1.0
        assert row["test_auc"] is None or 0.0 <= row["test_auc"] <= 1.0
        assert (out / row["run_id"] / "models" / "best" / "model.safetensors").is_file()
    kinds = [(r["name"], r["kind"]) for r in result["comparison"]]
    assert kinds == [
        ("late", "fusion"),
        ("face only (late)", "unimodal"),
        ("voice only (late)", "unimodal"),
        ("mid", "fusion"),
        ("face only (mid)", "unimodal"),
        ("voice only (mid)", "unimodal"),
    ]
    assert _png_size((folder / "plots" / "19_fusion_comparison.png").read_bytes()) == (1210, 605)
    assert len(list(csv.DictReader(io.StringIO((folder / "results.csv").read_text())))) == 2
    assert "plots/19_fusion_comparison.png" in (folder / "index.html").read_text()


def test_sweep_refuses_bad_values():
    from mmdeepfake.errors import ConfigError
    from mmdeepfake.sweep import parse_values

    assert parse_values("lr", ["1e-4,3e-4", "1e-3"]) == [1e-4, 3e-4, 1e-3]
    assert parse_values("batch_size", ["4", "8"]) == [4, 8]
    assert len(parse_values("fusion", ["all"])) == 5
    with pytest.raises(ConfigError, match="int"):
        parse_values("batch_size", ["a"])
    with pytest.raises(ConfigError, match="repeated"):
        parse_values("dropout", ["0.1", "0.1"])
