"""The bundled starter model: it loads from the package and separates unseen synthetic data."""

from __future__ import annotations

import json
from importlib import resources

import numpy as np
import pytest
import torch

from mmdeepfake import Detector
from mmdeepfake.data.layout import pair_samples, scan_dataset
from mmdeepfake.data.storage import open_storage
from mmdeepfake.data.streaming import build_split_loader
from mmdeepfake.data.synth import generate_dataset
from mmdeepfake.metrics import roc_auc


@pytest.fixture(scope="module")
def unseen_test_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("starter-test")
    generate_dataset(
        open_storage(root),
        clips=24,
        seed=987_654,
        variant="consistency",
        frames_per_clip=1,
        splits=(0.0, 0.0, 1.0),
    )
    return root


def test_starter_ships_small_with_a_card():
    with resources.as_file(resources.files("mmdeepfake") / "starter") as folder:
        size = sum((folder / n).stat().st_size for n in ("config.json", "model.safetensors"))
        card = (folder / "README.md").read_text()
        config = json.loads((folder / "config.json").read_text())
    assert size < 5_000_000
    assert "build_starter_model.py" in card and "ROC-AUC" in card and "synthetic" in card
    assert config["metadata"]["test_metrics"]["roc_auc"] >= 0.95


@pytest.mark.slow
def test_starter_scores_unseen_synthetic_pairs(unseen_test_set):
    detector = Detector.starter()
    storage = open_storage(unseen_test_set)
    index = scan_dataset(storage, "")
    samples = pair_samples(index, "test", 0)
    labels, scores = [], []
    with torch.inference_mode():
        for batch in build_split_loader(storage, index, "test", 16, samples=samples):
            out = detector(batch["faces"], batch["waves"])
            labels += batch["labels"].int().tolist()
            scores += torch.sigmoid(out.fake_logit).tolist()
    assert len(labels) == 24
    assert roc_auc(np.array(labels), np.array(scores)) >= 0.8

    sample = samples[0]
    # Faces cropped by the detector, as in training: whole uncropped frames lie near the
    # edge of the starter's familiar region (its guard may then answer "uncertain").
    prediction = detector.predict(
        image=storage.read_bytes(sample.image_key), audio=storage.read_bytes(sample.audio_key)
    )
    assert prediction.label in ("real", "fake") and 0.0 <= prediction.fake_probability <= 1.0
    assert prediction.domain["image"]["familiar"] and prediction.domain["audio"]["familiar"]
    assert set(prediction.face_emotions) == set(prediction.voice_emotions)
