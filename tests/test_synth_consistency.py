"""The `consistency` variant's promise: within each modality real and fake look the same.

A detector that sees only faces, or only voices, must be at chance; only the agreement of the
two emotions separates real from fake. Checked twice: with the *true* per-modality emotions as
features (the best any single-modality emotion recogniser could do), and with simple learned
features of the rendered frames and waveforms (pixels; band energies and rhythm), which would
also pick up any other difference between real and fake media (an artefact, a level shift).
Scores are out-of-fold predictions of 5-fold cross-validation, so every clip is scored once.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from mmdeepfake.data.synth import plan_clips, render_clip
from mmdeepfake.labels import NUM_EMOTIONS

pytestmark = pytest.mark.slow

sklearn = pytest.importorskip("sklearn")
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

CV = StratifiedKFold(5, shuffle=True, random_state=0)


def _oof_auc(features: np.ndarray, labels: np.ndarray, model) -> float:
    scores = cross_val_predict(model, features, labels, cv=CV, method="predict_proba")[:, 1]
    return float(roc_auc_score(labels, scores))


def test_true_emotions_of_one_modality_do_not_reveal_fakes():
    specs = plan_clips(6000, seed=21, variant="consistency", splits=(1, 0, 0))
    labels = np.array([s.label for s in specs])
    face = np.array([s.face_emotion for s in specs])
    voice = np.array([s.voice_emotion for s in specs])
    assert labels.mean() == pytest.approx(0.5, abs=0.01)
    onehot = np.eye(NUM_EMOTIONS)
    for emotions in (face, voice):
        # Emotion marginals are the same for real and fake (each emotion ~1/7 in both).
        for label in (0, 1):
            share = (
                np.bincount(emotions[labels == label], minlength=NUM_EMOTIONS)
                / (labels == label).sum()
            )
            assert np.abs(share - 1 / NUM_EMOTIONS).max() < 0.025
        auc = _oof_auc(onehot[emotions], labels, LogisticRegression(max_iter=1000))
        assert 0.47 <= auc <= 0.53, auc
    # Both modalities together: disagreement is exactly the fake label.
    assert roc_auc_score(labels, (face != voice).astype(float)) == 1.0


def _face_features(frame: np.ndarray) -> np.ndarray:
    grey = frame.astype(np.float32).mean(-1)
    small = grey.reshape(28, 4, 28, 4).mean((1, 3))  # 112 -> 28 px
    return np.concatenate(
        [small.ravel() / 255, frame.reshape(-1, 3).mean(0) / 255, frame.reshape(-1, 3).std(0) / 255]
    )


def _voice_features(wave: np.ndarray) -> np.ndarray:
    n_fft, hop = 512, 256
    frames = np.lib.stride_tricks.sliding_window_view(wave, n_fft)[::hop] * np.hanning(n_fft)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    freqs = np.fft.rfftfreq(n_fft, 1 / 16000)
    edges = np.geomspace(60, 8000, 21)
    bands = np.log(
        np.stack(
            [power[:, (freqs >= a) & (freqs < b)].sum(1) for a, b in itertools.pairwise(edges)], 1
        )
        + 1e-8
    )
    energy = np.log(power.sum(1) + 1e-8)
    voiced = energy > energy.max() - 4
    envelope = np.sqrt(power.sum(1))
    rhythm = np.abs(np.fft.rfft(envelope - envelope.mean(), 256))[:32]
    return np.concatenate(
        [
            bands[voiced].mean(0),
            bands[voiced].std(0),
            [energy.max(), voiced.mean()],
            rhythm / (rhythm.sum() + 1e-9),
        ]
    )


def test_single_modality_classifiers_are_at_chance_but_emotion_is_learnable():
    # Rendered at 112 px to keep the test fast; the drawing does not depend on the size.
    specs = plan_clips(200, seed=11, variant="consistency", splits=(1, 0, 0))
    clips = [render_clip(s, 11, frames_per_clip=1, size=112) for s in specs]
    labels = np.array([s.label for s in specs])
    faces = np.stack([_face_features(c.frames[0]) for c in clips])
    voices = np.stack([_voice_features(c.wave) for c in clips])

    def model(pca: int | None = None):
        steps = [StandardScaler()] + ([PCA(pca, random_state=0)] if pca else [])
        return make_pipeline(*steps, LogisticRegression(max_iter=3000, C=0.5))

    face_auc = _oof_auc(faces, labels, model(30))
    voice_auc = _oof_auc(voices, labels, model())
    # 200 clips: the AUC of a useless score has a standard deviation of about 0.04.
    assert 0.38 <= face_auc <= 0.62, face_auc
    assert 0.38 <= voice_auc <= 0.62, voice_auc
    # The same voice features do carry the voice's emotion: the chance result above is not
    # for lack of information in the features.
    voice_emotion = np.array([s.voice_emotion for s in specs])
    predicted = cross_val_predict(model(), voices, voice_emotion, cv=CV)
    assert (predicted == voice_emotion).mean() > 0.5
