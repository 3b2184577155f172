"""Per-modality training labels: the image head learns visual_fake, the audio head audio_fake.

The dataset is a tiny one in the training layout whose labels/clips.csv is written as
``mmdeepfake-prepare`` writes it for FakeAVCeleb: ``A`` real, ``B`` a real face with a cloned
voice, ``C`` a swapped face with the real voice, ``D`` both fake. The loss is checked by hand, and
so are the validation ROC-AUC and temperature of each head after a real one-epoch run.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from PIL import Image

from mmdeepfake.calibration import fit_temperature
from mmdeepfake.data.clip_labels import head_targets, read_clip_labels
from mmdeepfake.data.layout import pair_samples, scan_dataset
from mmdeepfake.data.storage import open_storage
from mmdeepfake.data.streaming import build_split_loader
from mmdeepfake.detector import Detector
from mmdeepfake.domain import embed_split
from mmdeepfake.losses import DetectionLoss
from mmdeepfake.model import ModelOutput
from mmdeepfake.testing import media as mf
from mmdeepfake.train import distributed as D
from mmdeepfake.train.config import TrainConfig
from mmdeepfake.train.fit import _losses
from mmdeepfake.train.run_context import RunContext
from mmdeepfake.train.trainer import train

HEADER = "clip_id,split,label,category,visual_fake,audio_fake,identity,source\n"
CLIPS_CSV = HEADER + (
    "a0,train,real,A,false,false,id0,a0.mp4\n"
    "b0,train,fake,B,false,true,id1,b0.mp4\n"
    "c0,train,fake,C,true,false,id2,c0.mp4\n"
    "d0,train,fake,D,true,true,id3,d0.mp4\n"
    "e0,train,fake,B,,true,id4,e0.mp4\n"  # the face is not said: the head learns the clip's
    "r0,train,fake,C,true,false,id5,r0.mp4\n"  # no recording of its own: a random pair
    "a1,validate,real,A,false,false,id6,a1.mp4\n"
    "b1,validate,fake,B,false,true,id7,b1.mp4\n"
)
# (image target, audio target) of each train image, by clip id; -1: the clip's label is used.
EXPECTED = {
    "a0": (0, 0),
    "b0": (0, 1),
    "c0": (1, 0),
    "d0": (1, 1),
    "e0": (-1, 1),
    "x0": (-1, -1),  # a fake clip without a row in clips.csv
    "r0": (-1, -1),  # a random pair keeps the pair's label for both heads
}


def bce(z: float, y: int) -> float:
    p = 1.0 / (1.0 + math.exp(-z))
    return -math.log(p) if y else -math.log(1.0 - p)


# --- the loss, by hand -------------------------------------------------------------------------


def test_each_head_learns_its_own_modality_label_and_unknown_falls_back_to_the_clip():
    image_logit, audio_logit = [0.5, -1.0, 2.0, -0.3], [-2.0, 1.5, 0.7, 0.2]
    out = ModelOutput(
        fake_logit=torch.tensor([1.0, 0.5, -1.5, 0.25]),
        face_emotion_logits=torch.zeros(4, 7),
        voice_emotion_logits=torch.zeros(4, 7),
        consistency=torch.tensor([0.5, 0.4, 0.9, 0.3]),
        modality_logits={"image": torch.tensor(image_logit), "audio": torch.tensor(audio_logit)},
    )
    labels = torch.tensor([1.0, 1.0, 0.0, 1.0])
    image = torch.tensor([0, -1, 1, -1])  # B (real face), unknown, a real clip's odd row, unknown
    audio = torch.tensor([1, 0, -1, -1])
    loss = DetectionLoss(emotion_weight=0.0, consistency_weight=0.0, auxiliary_weight=0.5)
    parts = loss(out, labels, image_labels=image, audio_labels=audio)

    image_targets, audio_targets = [0, 1, 1, 1], [1, 0, 0, 1]
    image_bce = sum(bce(z, y) for z, y in zip(image_logit, image_targets)) / 4
    audio_bce = sum(bce(z, y) for z, y in zip(audio_logit, audio_targets)) / 4
    detection = (bce(1.0, 1) + bce(0.5, 1) + bce(-1.5, 0) + bce(0.25, 1)) / 4
    assert parts["auxiliary"].item() == pytest.approx((image_bce + audio_bce) / 2, rel=1e-6)
    assert parts["detection"].item() == pytest.approx(detection, rel=1e-6)  # the clip label
    assert parts["total"].item() == pytest.approx(
        detection + 0.5 * (image_bce + audio_bce) / 2, rel=1e-6
    )
    # Without per-modality labels both heads learn the clip's label, as before.
    clip_only = sum(bce(z, int(y)) for z, y in zip(image_logit + audio_logit, 2 * labels.tolist()))
    assert loss(out, labels)["auxiliary"].item() == pytest.approx(clip_only / 8, rel=1e-6)
    all_unknown = torch.full((4,), -1)
    fallback = loss(out, labels, image_labels=all_unknown, audio_labels=all_unknown)
    assert fallback["auxiliary"].item() == pytest.approx(clip_only / 8, rel=1e-6)


def test_the_fit_loop_hands_the_batch_targets_to_the_loss():
    out = ModelOutput(
        fake_logit=torch.tensor([1.0]),
        face_emotion_logits=torch.zeros(1, 7),
        voice_emotion_logits=torch.zeros(1, 7),
        consistency=torch.tensor([0.5]),
        modality_logits={"image": torch.tensor([2.0]), "audio": torch.tensor([-1.0])},
    )
    batch = {
        "labels": torch.tensor([1.0]),
        "face_emotions": torch.tensor([-1]),
        "voice_emotions": torch.tensor([-1]),
        "image_labels": torch.tensor([0]),
        "audio_labels": torch.tensor([1]),
    }
    parts = _losses(DetectionLoss(), out, batch)
    assert parts["auxiliary"].item() == pytest.approx((bce(2.0, 0) + bce(-1.0, 1)) / 2, rel=1e-6)


# --- from labels/clips.csv to the batches ------------------------------------------------------


@pytest.fixture()
def fakeavceleb_like(tmp_path: Path) -> Path:
    """One frame and one recording per clip in the training layout, with a clips.csv."""
    face, voice = Image.fromarray(mf.face_photo()), mf.voice_like(seconds=1.0)
    clips = {
        ("train", "real"): ["a0"],
        ("train", "fake"): ["b0", "c0", "d0", "e0", "x0", "r0"],
        ("validate", "real"): ["a1"],
        ("validate", "fake"): ["b1"],
    }
    for (split, label), names in clips.items():
        (tmp_path / "frames" / split / label).mkdir(parents=True)
        (tmp_path / "audio" / split / label).mkdir(parents=True)
        for name in names:
            face.save(tmp_path / "frames" / split / label / f"{name}_00.png")
            if name != "r0":
                mf.write_audio(tmp_path / "audio" / split / label / f"{name}.wav", voice)
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "clips.csv").write_text(CLIPS_CSV)
    return tmp_path


def test_true_pairs_carry_visual_fake_and_audio_fake_into_the_batches(fakeavceleb_like):
    storage = open_storage(fakeavceleb_like)
    index = scan_dataset(storage, "")
    samples = pair_samples(index, "train", 0, clip_labels=read_clip_labels(storage, index))
    got = {s.image_key.split("/")[-1][:2]: (s.image_label, s.audio_label) for s in samples}
    assert got == EXPECTED
    assert all(s.label == (s.image_key.split("/")[2] == "fake") for s in samples)

    loader = build_split_loader(storage, index, "train", 8, samples=samples)
    (batch,) = list(loader)
    assert batch["skipped"] == []
    by_clip = {
        key.split("/")[-1][:2]: (int(i), int(a), int(y))
        for key, i, a, y in zip(
            batch["image_keys"], batch["image_labels"], batch["audio_labels"], batch["labels"]
        )
    }
    assert {clip: (i, a) for clip, (i, a, _) in by_clip.items()} == EXPECTED
    assert by_clip["b0"][2] == 1  # category B: a fake clip whose face the image head calls real
    # Pairs drawn without clips.csv (every other caller) keep the clip label for both heads.
    assert {(s.image_label, s.audio_label) for s in pair_samples(index, "train", 0)} == {(-1, -1)}


def test_a_training_run_reads_clips_csv_for_its_pairs(fakeavceleb_like, tmp_path_factory):
    out = tmp_path_factory.mktemp("outputs")
    config = TrainConfig(data_dir=str(fakeavceleb_like), prefix="", output=str(out))
    ctx = RunContext.open(config, D.DistInfo())
    assert ctx.clip_labels is not None and ctx.clip_labels["b0"].audio_fake is True
    assert [(s.image_label, s.audio_label) for s in ctx.val_samples] == [(0, 0), (0, 1)]
    train = ctx.train_samples(1)  # the pairs of each epoch
    assert {s.image_key.split("/")[-1][:2]: (s.image_label, s.audio_label) for s in train} == (
        EXPECTED
    )


# --- validation: each head is scored against its own modality's label ------------------------

# Fakes of every category in the validation split: B clips are real to the image head, C clips
# to the audio head, so each head's AUC against its own label differs from the clip label's.
SCORED_CSV = HEADER + "".join(
    f"{clip},{split},{'real' if cat == 'A' else 'fake'},{cat},"
    f"{str(cat in 'CD').lower()},{str(cat in 'BD').lower()},id{n},{clip}.mp4\n"
    for n, (clip, split, cat) in enumerate(
        [("a0", "train", "A"), ("a2", "train", "A"), ("b0", "train", "B")]
        + [("c0", "train", "C"), ("d0", "train", "D")]
        + [("a1", "validate", "A"), ("a3", "validate", "A"), ("a4", "validate", "A")]
        + [("b1", "validate", "B"), ("b2", "validate", "B"), ("c1", "validate", "C")]
        + [("c2", "validate", "C"), ("d1", "validate", "D")]
    )
)


def hand_auc(targets: list[int], scores: list[float]) -> float:
    """P(a fake outscores a real), ties counting one half: the ROC-AUC without a curve."""
    fakes = [s for s, y in zip(scores, targets) if y == 1]
    reals = [s for s, y in zip(scores, targets) if y == 0]
    wins = sum((f > r) + 0.5 * (f == r) for f in fakes for r in reals)
    return wins / (len(fakes) * len(reals))


@pytest.fixture()
def every_category(tmp_path: Path) -> Path:
    """A frame and a recording per clip of SCORED_CSV, each clip's face and voice its own."""
    root = tmp_path / "data"
    photo = mf.face_photo().astype(float)
    for n, row in enumerate(csv.DictReader(SCORED_CSV.splitlines())):
        split, label, clip = row["split"], row["label"], row["clip_id"]
        (root / "frames" / split / label).mkdir(parents=True, exist_ok=True)
        (root / "audio" / split / label).mkdir(parents=True, exist_ok=True)
        face = (photo * (0.55 + 0.035 * n)).clip(0, 255).astype("uint8")
        Image.fromarray(face).save(root / "frames" / split / label / f"{clip}_00.png")
        wave = 0.5 * mf.voice_like(seconds=1.0) + mf.tone(200.0 + 150.0 * n, amplitude=0.3)
        mf.write_audio(root / "audio" / split / label / f"{clip}.wav", wave)
    (root / "labels").mkdir()
    (root / "labels" / "clips.csv").write_text(SCORED_CSV)
    return root


def test_head_targets_name_the_labels_they_hold():
    clip = [1, 1, 0]
    assert head_targets("image", clip, [0, 1, 0])[1] == "visual_fake"
    assert head_targets("audio", clip, [-1, -1, -1])[1] == "clip"
    targets, used = head_targets("image", clip, [0, -1, 0])
    assert targets.tolist() == [0, 1, 0] and used == "visual_fake+clip"


def test_recorded_head_auc_and_temperature_are_against_the_modality_label(every_category, tmp_path):
    out = tmp_path / "out"
    config = TrainConfig.from_sources(
        "tiny", {"data_dir": str(every_category), "prefix": "", "output": str(out), "plots": False}
    )
    result = train(config, progress=False)
    run = Path(result.output_uri)
    metadata = json.loads((run / "models" / "best" / "config.json").read_text())["metadata"]
    summary = json.loads((run / "logs" / "summary.json").read_text())
    with open(run / "intermediate" / "val_predictions.csv") as f:
        rows = list(csv.DictReader(f))

    # The heads' scores at full precision (the predictions file keeps six digits, and the tiny
    # audio head barely moves in one epoch): the saved best model over the validation split.
    storage = open_storage(every_category)
    best = Detector.from_pretrained(str(run / "models" / "best"))
    validation = embed_split(best, storage, scan_dataset(storage, ""), "validate")
    truth = {row["clip_id"]: row for row in csv.DictReader(SCORED_CSV.splitlines())}
    clips = [truth[r["image_key"].split("/")[-1][:2]] for r in rows]
    assert sorted(c["category"] for c in clips) == sorted("AAABBCCD")
    clip_label = [int(c["label"] == "fake") for c in clips]
    assert validation.labels.tolist() == clip_label
    for head, column in (("image", "visual_fake"), ("audio", "audio_fake")):
        scores = getattr(validation, f"{head}_logits").astype(float).tolist()
        assert [float(r[f"{head}_logit"]) for r in rows] == pytest.approx(scores, rel=1e-5)
        own = [int(c[column] == "true") for c in clips]
        assert [int(r[f"{head}_label"]) for r in rows] == own
        auc = hand_auc(own, scores)
        assert auc != pytest.approx(hand_auc(clip_label, scores))  # the labels tell apart
        for recorded in (result.best_metrics, summary["best"], metadata["val_metrics"]):
            assert recorded[f"val_auc_{head}"] == pytest.approx(auc, abs=1e-12)
            assert recorded[f"val_auc_{head}_label"] == column
        # The head's own calibration, fitted on the validation split with the guard.
        calibration = metadata["modality_calibration"][head]
        assert calibration["label"] == column
        assert calibration["val_auc"] == pytest.approx(auc, abs=1e-12)
        assert calibration["temperature"] == pytest.approx(fit_temperature(scores, own))
