"""Per-category evaluation from labels/clips.csv, and the silence shortcut audit, by value.

The dataset is the synthetic generator's (faces the detector finds), with the test split's
voices rewritten to plant the shortcut published for FakeAVCeleb and AV-Deepfake1M: every fake
recording opens with 0.5 s of silence, no real one does. Its labels/clips.csv is written as
``mmdeepfake-prepare`` writes it, with FakeAVCeleb's categories: real clips are ``A``, fakes
cycle through ``B`` (fake voice), ``C`` (fake face) and ``D`` (both); one real test clip has
no row, so the evaluator must leave it out of the per-category numbers and say so.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from mmdeepfake.data.clip_labels import ClipLabel, parse_clip_labels
from mmdeepfake.errors import ConfigError, DatasetError

torch = pytest.importorskip("torch")

from tiny_models import TINY_ARCH

HEADER = "clip_id,split,label,category,visual_fake,audio_fake,identity,source\n"
CATEGORY_FLAGS = {"A": ("false", "false"), "B": ("false", "true")}
CATEGORY_FLAGS |= {"C": ("true", "false"), "D": ("true", "true")}


# --- labels/clips.csv --------------------------------------------------------------------------


def test_clips_csv_rows_become_records_with_optional_modality_flags() -> None:
    text = HEADER + "a1,test,real,A,false,false,id1,x/a1.mp4\nb2,test,fake,B,,TRUE,,\n"
    table = parse_clip_labels(text)
    assert table["a1"] == ClipLabel("a1", "test", "real", "A", False, False, "id1", "x/a1.mp4")
    assert table["b2"] == ClipLabel("b2", "test", "fake", "B", None, True, None, None)
    only_required = parse_clip_labels("clip_id,split,label,category\nc3,train,fake,D\n")
    assert only_required["c3"].visual_fake is None and only_required["c3"].category == "D"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("a1,test,real,A,maybe,false,,\n", r"line 2 \(clip a1\): visual_fake is 'maybe'"),
        ("a1,test,real,A,,,,\na1,test,real,A,,,,\n", r"line 3 \(clip a1\).*appears twice"),
        ("a1,test,genuine,A,,,,\n", r"line 2 \(clip a1\): label is 'genuine'"),
        ("a1,dev,real,A,,,,\n", r"line 2 \(clip a1\): split is 'dev'"),
        ("a1,test,real,,,,,\n", r"line 2 \(clip a1\): category is empty"),
        (",test,real,A,,,,\n", r"line 2 \(clip \?\): clip_id is empty"),
    ],
)
def test_a_bad_row_is_a_dataset_error_naming_the_line_and_clip(body: str, message: str) -> None:
    with pytest.raises(DatasetError, match=message):
        parse_clip_labels(HEADER + body, source="labels/clips.csv")


def test_a_header_without_the_required_columns_is_a_dataset_error() -> None:
    with pytest.raises(DatasetError, match="no column category"):
        parse_clip_labels("clip_id,split,label\na1,test,real\n")


def test_the_synthetic_generators_clips_csv_gives_no_categories(tmp_path: Path) -> None:
    """mmdeepfake-synth's own clips.csv (emotions, artefacts) must not change its evaluation."""
    from mmdeepfake.data.clip_labels import read_clip_labels
    from mmdeepfake.data.layout import scan_dataset
    from mmdeepfake.data.storage import open_storage

    storage = open_storage(tmp_path)
    storage.write_bytes("frames/test/real/a1_0.png", b"x")
    storage.write_bytes("audio/test/real/a1.wav", b"x")
    storage.write_text("labels/clips.csv", "clip_id,split,label,face_emotion\na1,test,real,sad\n")
    index = scan_dataset(storage, "")
    assert read_clip_labels(storage, index) is None
    storage.write_text("labels/clips.csv", HEADER + "a1,test,real,A,false,false,p,s\n")
    assert read_clip_labels(storage, index) == {
        "a1": ClipLabel("a1", "test", "real", "A", False, False, "p", "s")
    }


def test_an_unknown_audit_is_a_config_error_and_the_cli_offers_silence() -> None:
    from mmdeepfake.cli.evaluate import build_parser
    from mmdeepfake.evaluate.evaluator import AUDITS, evaluate

    with pytest.raises(ConfigError, match="unknown audit loudness; choose from silence"):
        evaluate("starter", data_dir="/nowhere", audit=("loudness",))
    args = build_parser().parse_args(["--model", "m", "--data", "d", "--audit", "silence"])
    assert args.audit == ["silence"] == list(AUDITS)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--model", "m", "--audit", "loudness"])


# --- the dataset with a planted shortcut -------------------------------------------------------


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from mmdeepfake.data.storage import open_storage
    from mmdeepfake.data.synth import generate_dataset
    from mmdeepfake.testing.media import voice_like, write_audio

    root = tmp_path_factory.mktemp("categories")
    generate_dataset(
        open_storage(root), clips=20, seed=5, frames_per_clip=2, splits=(0.2, 0.2, 0.6)
    )
    synth_rows = list(csv.DictReader(io.StringIO((root / "labels/clips.csv").read_text())))
    rows, fakes, unlisted = [], 0, None
    for i, row in enumerate(synth_rows):
        clip, split, label = row["clip_id"], row["split"], row["label"]
        if split == "test":
            voice = voice_like(seconds=2.0, seed=i)
            if label == "fake":
                voice = np.concatenate([np.zeros(8000, np.float32), voice])
            write_audio(root / f"audio/{split}/{label}/{clip}.wav", voice)
            if label == "real" and unlisted is None:
                unlisted = clip
                continue
        category = "A" if label == "real" else "BCD"[fakes % 3]
        fakes += label == "fake"
        flags = ",".join(CATEGORY_FLAGS[category])
        rows.append(f"{clip},{split},{label},{category},{flags},person{i % 4},raw/{clip}.mp4\n")
    (root / "labels/clips.csv").write_text(HEADER + "".join(rows))
    return root


def _category_of(root: Path) -> dict[str, ClipLabel]:
    return parse_clip_labels((root / "labels/clips.csv").read_text())


@pytest.mark.slow
def test_by_category_equals_metrics_recomputed_from_the_saved_scores(
    dataset: Path, tmp_path: Path
) -> None:
    """Every by_category number, recomputed here from the per-pair scores with scikit-learn.

    A category holding one class is ranked against the split's pairs of the other class (A's
    reals against every fake; B, C, D's fakes against every real); accuracy is over the
    category's own pairs.
    """
    from sklearn.metrics import roc_auc_score

    from mmdeepfake import metrics as M
    from mmdeepfake.calibration import sigmoid
    from mmdeepfake.data.layout import clip_id
    from mmdeepfake.detector import Detector
    from mmdeepfake.evaluate.evaluator import evaluate

    torch.manual_seed(0)
    detector = Detector(fusion="mid", temperature=2.0, threshold=0.5, **TINY_ARCH)
    result = evaluate(detector, data_dir=str(dataset), output=str(tmp_path / "out"), batch_size=8)
    written = json.loads((tmp_path / "out/metrics.json").read_text())
    scores = result.scores
    assert scores is not None
    table = _category_of(dataset)
    clips = [clip_id(k) for k in scores.image_keys]
    listed = np.array([c in table for c in clips])
    assert written["unlisted_pairs"] == int((~listed).sum()) == 2  # one real clip, 2 frames
    y = scores.labels
    prob = sigmoid(scores.logits / 2.0)
    image, audio = sigmoid(scores.variants["image head"]), sigmoid(scores.variants["audio head"])
    category = np.array([table[c].category if c in table else "" for c in clips])
    visual = np.array([table[c].visual_fake if c in table else False for c in clips])
    voiced = np.array([table[c].audio_fake if c in table else False for c in clips])

    assert sorted(written["by_category"]) == ["A", "B", "C", "D"]
    for name, row in written["by_category"].items():
        own = category == name
        other = 1 if name == "A" else 0
        ranked = own | (listed & (y == other))
        assert row["n"] == own.sum() and row["n_fake"] == y[own].sum()
        assert row["clips"] == len({c for c, keep in zip(clips, own) if keep})
        assert row["accuracy"] == pytest.approx(np.mean((prob[own] >= 0.5) == y[own]))
        assert row["roc_auc"] == pytest.approx(roc_auc_score(y[ranked], prob[ranked]))
        assert row["eer"] == pytest.approx(M.equal_error_rate(y[ranked], prob[ranked])[0])
        for key, truth, head in (
            ("image_head_auc", visual, image),
            ("audio_head_auc", voiced, audio),
        ):
            if len(set(truth[ranked].tolist())) == 2:
                assert row[key] == pytest.approx(roc_auc_score(truth[ranked], head[ranked]))
            else:  # B's faces and C's voices are all real, as are A's: undefined, and said so
                assert row[key] is None and "takes one value here" in row["note"]
    assert written["by_modality"]["image"]["roc_auc"] == pytest.approx(
        roc_auc_score(visual[listed], image[listed])
    )
    assert written["by_modality"]["audio"]["roc_auc"] == pytest.approx(
        roc_auc_score(voiced[listed], audio[listed])
    )
    assert "audit" not in written
    page = (tmp_path / "out/index.html").read_text()
    assert "<h2>By category" in page and "Shortcut audit" not in page
    assert "2 pair(s) belong to clips without a row in labels/clips.csv" in page
    metrics_csv = list(csv.DictReader(io.StringIO((tmp_path / "out/metrics.csv").read_text())))
    b_auc = [r for r in metrics_csv if r["section"] == "by_category" and r["name"] == "B"]
    assert float(next(r for r in b_auc if r["metric"] == "roc_auc")["value"]) == pytest.approx(
        written["by_category"]["B"]["roc_auc"]
    )


def _leading_silence_probe(detector):
    """The detector with its decision replaced by the share of near-silent samples in the first
    0.25 s of the voice window: a scorer that leans on the planted shortcut and nothing else.

    The share rides in the first embedding value of the audio view (so the evaluator's own
    scoring pass carries it unchanged to the fusion), and the fusion's fake logit is read from
    it. It is deterministic, needs no training and cannot pick up any other cue, so the AUC it
    loses when the silence is trimmed is the shortcut's share alone.
    """
    model = detector.model
    encode_audio, fuse = model.encode_audio, model.fuse

    def probe_audio(waves):
        out = encode_audio(waves)
        embedding = out.embedding.clone()
        embedding[:, 0] = (waves[:, :4000].abs() < 1e-4).float().mean(dim=1)
        return replace(out, embedding=embedding)

    def probe_fuse(image, audio):
        return replace(fuse(image, audio), fake_logit=10.0 * (audio.embedding[:, 0] - 0.5))

    model.encode_audio, model.fuse = probe_audio, probe_fuse
    return detector


@pytest.mark.slow
def test_the_silence_audit_shows_a_scorer_leaning_on_leading_silence(
    dataset: Path, tmp_path: Path
) -> None:
    """With the silence at the ends trimmed, fakes open with voice like reals, so the probe's
    perfect ranking collapses: the audit must report that as a large drop."""
    from mmdeepfake.cli.evaluate import format_table
    from mmdeepfake.detector import Detector
    from mmdeepfake.evaluate.evaluator import evaluate

    torch.manual_seed(0)
    detector = _leading_silence_probe(Detector(fusion="mid", **TINY_ARCH))
    out = tmp_path / "out"
    result = evaluate(
        detector, data_dir=str(dataset), output=str(out), batch_size=8, audit=("silence",)
    )
    silence = result.summary["audit"]["silence"]
    assert silence["auc"] == result.summary["metrics"]["roc_auc"] == 1.0
    assert silence["auc_trimmed"] <= 0.7
    assert silence["drop"] == pytest.approx(silence["auc"] - silence["auc_trimmed"])
    assert silence["drop"] >= 0.3
    assert silence["pairs"] == silence["pairs_trimmed"] == result.summary["n"]
    audio_head = next(r for r in result.summary["ablation"] if r["name"] == "audio head")
    assert silence["audio_head_auc"] == pytest.approx(audio_head["roc_auc"])
    assert silence["audio_head_auc_trimmed"] != silence["audio_head_auc"]
    assert "only the audio was trimmed" in silence["frames"]
    assert json.loads((out / "metrics.json").read_text())["audit"]["silence"] == silence
    page = (out / "index.html").read_text()
    assert "<h2>Shortcut audit: leading and trailing silence trimmed" in page
    assert f"{silence['auc_trimmed']:.4f}" in page and "only the audio was trimmed" in page
    assert f"(drop {silence['drop']:.4f})" in format_table(result.summary)
