"""Value-level checks of the numbers a user reads: consistency, fusion inputs, temperature,
abstention, the face detector's final suppression and every headline metric.

Each test compares the library's output with a value computed independently here (numpy
formulas, hand-worked counts), so that a change which keeps outputs "in range" but wrong fails.
The starter-model tests use synthetic faces and voices from ``mmdeepfake.data.synth_*`` whose
emotions agree or disagree by construction.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mmdeepfake import Detector
from mmdeepfake import metrics as M
from mmdeepfake.calibration import (
    abstention_table,
    binary_nll,
    calibration_summary,
    expected_calibration_error,
    reliability_bins,
)
from mmdeepfake.data.synth_face import draw_face
from mmdeepfake.data.synth_voice import synth_voice
from mmdeepfake.encoders import EncoderOutput
from mmdeepfake.evaluate.evaluator import PERMUTATIONS, SplitScores, summarise
from mmdeepfake.fusion import create_fusion
from mmdeepfake.labels import EMOTIONS
from mmdeepfake.losses import DetectionLoss
from mmdeepfake.model import EmotionConsistencyModel, ModelOutput
from mmdeepfake.testing import media as mf
from tiny_models import TINY_ARCH

LN2 = math.log(2.0)


# --- independent formulas ---------------------------------------------------------------------


def np_softmax(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def np_consistency(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """1 - JSD(p, q) / ln 2 with plain numpy (0 log 0 = 0)."""
    p, q = np.asarray(p, dtype=np.float64), np.asarray(q, dtype=np.float64)
    m = (p + q) / 2

    def kl(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(a > 0, a * np.log(a / b), 0.0)
        return terms.sum(axis=-1)

    return 1.0 - (0.5 * kl(p, m) + 0.5 * kl(q, m)) / LN2


def logit(p: float) -> float:
    return math.log(p / (1.0 - p))


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def as_vector(emotions: dict[str, float]) -> np.ndarray:
    return np.array([emotions[name] for name in EMOTIONS])


# --- the starter model on pairs built to agree or disagree ------------------------------------


def synthetic_pair(face: str, voice: str, seed: int, seconds: float = 4.0):
    rng = np.random.default_rng(seed)
    return draw_face(face, rng), synth_voice(voice, rng, seconds=seconds)


@pytest.fixture(scope="module")
def agree():
    return synthetic_pair("sad", "sad", seed=1)


@pytest.fixture(scope="module")
def disagree():
    return synthetic_pair("sad", "happy", seed=1)


def predict(detector: Detector, pair, **options):
    image, audio = pair
    return detector.predict(image=image, audio=audio, detect_faces=False, **options)


@pytest.mark.slow
def test_consistency_is_the_jsd_of_the_reported_face_and_voice_emotions(agree, disagree):
    starter = Detector.starter()
    for pair in (agree, disagree):
        prediction = predict(starter, pair)
        assert len(prediction.segments) >= 2
        for segment in prediction.segments:
            expected = np_consistency(
                as_vector(segment.face_emotions), as_vector(segment.voice_emotions)
            )
            # Emotion probabilities are rounded to 5 decimals in the result.
            assert segment.consistency == pytest.approx(float(expected), abs=2e-4)
        assert prediction.consistency == pytest.approx(
            np.mean([s.consistency for s in prediction.segments]), abs=1e-6
        )


@pytest.mark.slow
def test_agreeing_and_disagreeing_pairs_score_apart(agree, disagree):
    starter = Detector.starter()
    same, different = predict(starter, agree), predict(starter, disagree)
    assert same.face_emotion == same.voice_emotion == "sad"
    assert (different.face_emotion, different.voice_emotion) == ("sad", "happy")
    assert same.consistency > 0.9 and different.consistency < 0.2
    assert same.label == "real" and same.fake_probability < 0.1
    assert different.label == "fake" and different.fake_probability > 0.9


@pytest.mark.slow
@pytest.mark.parametrize("temperature", [2.0, 3.0])
def test_predict_divides_the_fused_logit_by_the_temperature(disagree, temperature):
    plain = predict(Detector.starter().with_config(temperature=1.0), disagree)
    scaled = predict(Detector.starter().with_config(temperature=temperature), disagree)
    segment_logits = [logit(s.fake_probability) for s in plain.segments]
    for segment, z in zip(scaled.segments, segment_logits):
        assert segment.fake_probability == pytest.approx(sigmoid(z / temperature), rel=1e-4)
    expected = sigmoid(float(np.mean(segment_logits)) / temperature)
    assert scaled.fake_probability == pytest.approx(expected, rel=1e-4)
    assert abs(scaled.fake_probability - plain.fake_probability) > 1e-3


@pytest.mark.slow
def test_the_shipped_starter_applies_its_own_temperature(disagree):
    starter = Detector.starter()
    assert starter.temperature != pytest.approx(1.0)
    plain = predict(Detector.starter().with_config(temperature=1.0), disagree)
    z = float(np.mean([logit(s.fake_probability) for s in plain.segments]))
    assert predict(starter, disagree).fake_probability == pytest.approx(
        sigmoid(z / starter.temperature), rel=1e-4
    )


@pytest.mark.slow
def test_abstention_keeps_confident_verdicts_and_abstains_on_unconfident_ones(agree, disagree):
    starter = Detector.starter()
    # Confident either way (both above 0.9): the verdict stands, on either side of 0.5.
    real = predict(starter, agree, abstain_below=0.9)
    fake = predict(starter, disagree, abstain_below=0.9)
    assert (real.label, fake.label) == ("real", "fake")
    assert real.confidence > 0.9 and fake.confidence > 0.9
    # A bound above the confidence abstains.
    assert predict(starter, agree, abstain_below=1.0).label == "uncertain"
    # A very hot temperature pulls the score towards 0.5: unconfident, so it abstains.
    hot = predict(Detector.starter().with_config(temperature=100.0), disagree, abstain_below=0.6)
    assert 0.5 < hot.fake_probability < 0.6 and hot.label == "uncertain"


@pytest.mark.slow
def test_threshold_argument_moves_the_verdict(agree, disagree):
    starter = Detector.starter()
    fake = predict(starter, disagree)
    assert fake.label == "fake" and fake.threshold == starter.threshold == 0.5
    bar = min(1.0, fake.fake_probability + 1e-4)
    strict = predict(starter, disagree, threshold=bar)
    assert strict.label == "real" and strict.threshold == pytest.approx(bar)
    assert (
        starter.with_config(threshold=0.0)
        .predict(image=agree[0], audio=agree[1], detect_faces=False)
        .label
        == "fake"
    )


# --- the model and every fusion, from the right tensors ----------------------------------------


def encoder_output(dim: int, tokens: int, seed: int, batch: int = 3) -> EncoderOutput:
    g = torch.Generator().manual_seed(seed)
    return EncoderOutput(
        embedding=torch.randn(batch, dim, generator=g),
        tokens=torch.randn(batch, tokens, dim, generator=g),
        emotion_logits=3 * torch.randn(batch, 7, generator=g),
    )


@pytest.mark.slow
def test_model_fuse_reports_the_consistency_of_face_against_voice():
    model = EmotionConsistencyModel(fusion="mid", **TINY_ARCH).eval()
    image, audio = encoder_output(32, 4, seed=1), encoder_output(32, 5, seed=2)
    # Row 0 agrees by construction; rows 1 and 2 disagree.
    audio.emotion_logits[0] = image.emotion_logits[0]
    with torch.no_grad():
        out = model.fuse(image, audio)
    torch.testing.assert_close(out.face_emotion_logits, image.emotion_logits)
    torch.testing.assert_close(out.voice_emotion_logits, audio.emotion_logits)
    expected = np_consistency(
        np_softmax(image.emotion_logits.numpy()), np_softmax(audio.emotion_logits.numpy())
    )
    np.testing.assert_allclose(out.consistency.numpy(), expected, atol=1e-5)
    assert out.consistency[0] == pytest.approx(1.0, abs=1e-5)
    assert (out.consistency[1:] < 0.9).all()


@pytest.mark.slow
def test_model_fuse_reports_the_adaptive_weights_of_face_and_voice():
    torch.manual_seed(0)
    model = EmotionConsistencyModel(fusion="adaptive", **TINY_ARCH).eval()
    image, audio = encoder_output(32, 4, seed=7), encoder_output(32, 5, seed=8)
    with torch.no_grad():
        out = model.fuse(image, audio)
        scores = model.fusion.unimodal_logits(image, audio)
    # alpha = softmax(tau * confidence) over (image, audio), confidence = max(p, 1 - p).
    p = torch.sigmoid(torch.stack([scores["image"], scores["audio"]], dim=-1))
    expected = torch.softmax(model.fusion.tau * torch.maximum(p, 1 - p), dim=-1)
    assert out.fusion_weights is not None
    torch.testing.assert_close(out.fusion_weights, expected)
    torch.testing.assert_close(out.fusion_weights.sum(-1), torch.ones(3))


def test_mid_fusion_classifier_sees_the_right_features():
    torch.manual_seed(0)
    fusion = create_fusion("mid", image_dim=12, audio_dim=20, hidden=16).eval()
    image, audio = encoder_output(12, 3, seed=3), encoder_output(20, 4, seed=4)
    audio.emotion_logits[0] = image.emotion_logits[0]
    seen = {}
    fusion.classifier.register_forward_hook(lambda m, args, out: seen.update(x=args[0]))
    with torch.no_grad():
        fusion(image, audio)
        z_face = fusion.image_proj(image.embedding)
        z_voice = fusion.audio_proj(audio.embedding)
    x = seen["x"]
    p_face = np_softmax(image.emotion_logits.numpy())
    p_voice = np_softmax(audio.emotion_logits.numpy())
    h = 16
    torch.testing.assert_close(x[:, :h], z_face)
    torch.testing.assert_close(x[:, h : 2 * h], z_voice)
    np.testing.assert_allclose(x[:, 2 * h : 2 * h + 7].numpy(), p_face, atol=1e-6)
    np.testing.assert_allclose(x[:, 2 * h + 7 : 2 * h + 14].numpy(), p_voice, atol=1e-6)
    np.testing.assert_allclose(
        x[:, 2 * h + 14 : 2 * h + 21].numpy(), abs(p_face - p_voice), atol=1e-6
    )
    divergence = 1.0 - np_consistency(p_face, p_voice)
    np.testing.assert_allclose(x[:, -2].numpy(), divergence, atol=1e-5)
    assert x[0, -2] == pytest.approx(0.0, abs=1e-5) and (x[1:, -2] > 0.1).all()
    cosine = torch.nn.functional.cosine_similarity(z_face, z_voice, dim=-1)
    torch.testing.assert_close(x[:, -1], cosine)


def test_unimodal_heads_read_their_own_modality():
    torch.manual_seed(0)
    fusion = create_fusion("late", image_dim=12, audio_dim=20, hidden=16).eval()
    image, audio = encoder_output(12, 3, seed=5), encoder_output(20, 4, seed=6)
    with torch.no_grad():
        scores = fusion.unimodal_logits(image, audio)
        torch.testing.assert_close(scores["image"], fusion.image_head(image.embedding).squeeze(-1))
        torch.testing.assert_close(scores["audio"], fusion.audio_head(audio.embedding).squeeze(-1))


@pytest.mark.parametrize("combine", ["logit", "prob"])
def test_late_fusion_weighs_the_two_heads_equally_whatever_the_batch(combine):
    torch.manual_seed(0)
    fusion = create_fusion("late", image_dim=12, audio_dim=20, hidden=16, combine=combine).eval()
    image, audio = encoder_output(12, 3, seed=5, batch=5), encoder_output(20, 4, seed=6, batch=5)
    with torch.no_grad():
        out = fusion(image, audio)
    s_image, s_audio = out.modality_logits["image"], out.modality_logits["audio"]
    if combine == "logit":
        torch.testing.assert_close(out.fake_logit, (s_image + s_audio) / 2)
    else:
        p = (torch.sigmoid(s_image) + torch.sigmoid(s_audio)) / 2
        torch.testing.assert_close(out.fake_logit, torch.log(p / (1 - p)))


def test_early_fusion_mixes_cls_face_and_voice_tokens():
    torch.manual_seed(0)
    fusion = create_fusion("early", image_dim=12, audio_dim=20, hidden=16).eval()
    image, audio = encoder_output(12, 3, seed=7), encoder_output(20, 4, seed=8)
    with torch.no_grad():
        face = fusion.image_proj(image.tokens) + fusion.modality_embedding[0]
        voice = fusion.audio_proj(audio.tokens) + fusion.modality_embedding[1]
        x = torch.cat([fusion.cls.expand(3, -1, -1), face, voice], dim=1)
        expected = fusion.classifier(fusion.encoder(x)[:, 0]).squeeze(-1)
        torch.testing.assert_close(fusion(image, audio).fake_logit, expected)


def test_attention_fusion_crosses_face_and_voice():
    torch.manual_seed(0)
    fusion = create_fusion("attention", image_dim=12, audio_dim=20, hidden=16).eval()
    image, audio = encoder_output(12, 3, seed=9), encoder_output(20, 4, seed=10)
    with torch.no_grad():
        face, voice = fusion.image_proj(image.tokens), fusion.audio_proj(audio.tokens)
        face_ctx = fusion.face_to_voice(face, voice)
        voice_ctx = fusion.voice_to_face(voice, face)
        tokens = torch.cat([face_ctx, voice_ctx], dim=1)
        w = torch.softmax(fusion.pool.score(tokens).squeeze(-1), dim=-1)
        pooled = (w[..., None] * tokens).sum(1)
        x = torch.cat([pooled, face_ctx.mean(1), voice_ctx.mean(1)], dim=-1)
        out = fusion(image, audio)
    torch.testing.assert_close(out.fake_logit, fusion.classifier(x).squeeze(-1))
    torch.testing.assert_close(out.weights[:, 0], w[:, :3].sum(-1))
    torch.testing.assert_close(out.weights[:, 1], w[:, 3:].sum(-1))


def test_cross_block_is_pre_norm_attention_then_feed_forward():
    from mmdeepfake.fusion.attention import CrossBlock

    torch.manual_seed(0)
    block = CrossBlock(8, 2, 0.0).eval()
    x, y = torch.randn(2, 3, 8), torch.randn(2, 5, 8)
    with torch.no_grad():
        kv = block.norm_kv(y)
        mid = x + block.attn(block.norm_q(x), kv, kv, need_weights=False)[0]
        torch.testing.assert_close(block(x, y), mid + block.ffn(mid))


# --- the training objective by hand ------------------------------------------------------------


def test_detection_loss_parts_by_hand():
    face = torch.tensor([[2.0, 0.0, 0.0, 0, 0, 0, 0], [0.0, 1.0, 0.0, 0, 0, 0, 0]])
    voice = torch.tensor([[2.0, 0.0, 0.0, 0, 0, 0, 0], [0.0, 0.0, 3.0, 0, 0, 0, 0]])
    consistency = torch.tensor([0.9, 0.2])
    out = ModelOutput(
        fake_logit=torch.tensor([-1.0, 2.0]),
        face_emotion_logits=face,
        voice_emotion_logits=voice,
        consistency=consistency,
        modality_logits={"image": torch.tensor([0.5, 0.0]), "audio": torch.tensor([-2.0, 1.0])},
    )
    labels = torch.tensor([0, 1])
    loss = DetectionLoss(
        emotion_weight=0.3, consistency_weight=0.7, margin=0.6, auxiliary_weight=0.2
    )
    parts = loss(out, labels, torch.tensor([0, -1]), torch.tensor([0, 2]))

    def bce(z: float, y: int) -> float:
        return -math.log(sigmoid(z)) if y else -math.log(1 - sigmoid(z))

    def ce(logits: torch.Tensor, k: int) -> float:
        return float(-torch.log_softmax(logits, -1)[k])

    detection = (bce(-1.0, 0) + bce(2.0, 1)) / 2
    auxiliary = ((bce(0.5, 0) + bce(0.0, 1)) / 2 + (bce(-2.0, 0) + bce(1.0, 1)) / 2) / 2
    emotion = (ce(face[0], 0) + ce(voice[0], 0) + ce(voice[1], 2)) / 3
    # Real row: divergence 0.1; fake row: relu(0.6 - 0.8) = 0.
    consistency_term = (0.1 + 0.0) / 2
    assert parts["detection"].item() == pytest.approx(detection, rel=1e-6)
    assert parts["auxiliary"].item() == pytest.approx(auxiliary, rel=1e-6)
    assert parts["emotion"].item() == pytest.approx(emotion, rel=1e-6)
    assert parts["consistency"].item() == pytest.approx(consistency_term, rel=1e-6)
    assert parts["total"].item() == pytest.approx(
        detection + 0.2 * auxiliary + 0.3 * emotion + 0.7 * consistency_term, rel=1e-6
    )
    # A fake pair that agrees too well is pushed apart: relu(0.6 - 0.3) on the fake row.
    out.consistency = torch.tensor([0.9, 0.7])
    unlabelled = loss(out, labels)
    assert unlabelled["consistency"].item() == pytest.approx((0.1 + 0.3) / 2, rel=1e-6)
    assert unlabelled["emotion"].item() == 0.0
    # Voice labels alone still count when the face has none.
    voice_only = loss(out, labels, None, torch.tensor([0, 2]))["emotion"].item()
    assert voice_only == pytest.approx((ce(voice[0], 0) + ce(voice[1], 2)) / 2, rel=1e-6)
    out.modality_logits = {}
    assert loss(out, labels)["auxiliary"].item() == 0.0


def test_detection_loss_defaults_are_the_documented_weights():
    loss = DetectionLoss()
    assert (loss.emotion_weight, loss.consistency_weight, loss.margin, loss.auxiliary_weight) == (
        1.0,
        0.5,
        0.5,
        0.25,
    )


# --- the face detector's final suppression on real photographs ---------------------------------


@pytest.fixture(scope="module")
def face_detector():
    from mmdeepfake.media.faces import FaceDetector

    return FaceDetector.shared()


@pytest.mark.parametrize("photo", [mf.face_photo, mf.astronaut], ids=["hopper", "astronaut"])
def test_one_box_per_face_on_a_real_photo(face_detector, photo):
    (boxes,) = face_detector.detect_all([photo()])
    assert len(boxes) == 1, boxes


def test_two_faces_side_by_side_give_two_boxes(face_detector):
    from PIL import Image

    left = mf.face_photo()
    right = np.asarray(Image.fromarray(mf.astronaut()).resize(left.shape[1::-1]))
    (boxes,) = face_detector.detect_all([np.concatenate([left, right], axis=1)])
    assert len(boxes) == 2, boxes
    centres = sorted((b.x1 + b.x2) / 2 for b in boxes)
    assert centres[0] < left.shape[1] < centres[1]


# --- headline metrics against hand-computed values ---------------------------------------------

# y:  real real real fake fake;  scores 0.1 0.6 0.7 0.8 0.3;  threshold 0.5
# predicted fake: 0.6, 0.7, 0.8 -> TN 1 (0.1), FP 2 (0.6, 0.7), FN 1 (0.3), TP 1 (0.8).
Y = [0, 0, 0, 1, 1]
S = [0.1, 0.6, 0.7, 0.8, 0.3]


def test_compute_metrics_every_value_by_hand():
    m = M.compute_metrics(Y, S, 0.5)
    assert m["confusion_matrix"] == [[1, 2], [1, 1]]
    assert (m["n"], m["n_real"], m["n_fake"], m["threshold"]) == (5, 3, 2, 0.5)
    assert m["accuracy"] == pytest.approx(2 / 5)
    assert m["precision"] == pytest.approx(1 / 3)
    assert m["recall"] == pytest.approx(1 / 2)
    assert m["specificity"] == pytest.approx(1 / 3)
    assert m["f1"] == pytest.approx(2 / 5)
    # Fake-real pairs ranked right: 0.8 beats all three reals, 0.3 beats 0.1 -> 4 of 6.
    assert m["roc_auc"] == pytest.approx(4 / 6)
    # Ranked 0.8 (fake) 0.7 0.6 0.3 (fake) 0.1: P = 1 at R = 1/2, P = 2/4 at R = 1.
    assert m["average_precision"] == pytest.approx(0.5 * 1 + 0.5 * 0.5)
    # FNR - FPR: 0.5 at 0.8, 1/6 at 0.7, -1/6 at 0.6 -> crossing halfway: FPR 1/3 + 1/6.
    assert m["eer"] == pytest.approx(0.5)
    assert m["eer_threshold"] == pytest.approx(0.7)
    # F1 2/3 at 0.8 and at 0.3: the higher threshold wins.
    assert (m["best_f1_threshold"], m["best_f1"]) == (pytest.approx(0.8), pytest.approx(2 / 3))
    assert "note" not in m


def test_specificity_and_recall_use_their_own_class():
    # 4 reals (3 called real), 1 fake (called fake): specificity 3/4, recall 1.
    m = M.compute_metrics([0, 0, 0, 0, 1], [0.1, 0.2, 0.3, 0.9, 0.8], 0.5)
    assert m["specificity"] == pytest.approx(3 / 4)
    assert m["recall"] == pytest.approx(1.0)
    assert m["precision"] == pytest.approx(1 / 2)


def test_threshold_is_inclusive_and_notes_explain_undefined_values():
    m = M.compute_metrics([0, 1], [0.5, 0.5], 0.5)
    assert m["confusion_matrix"] == [[0, 1], [0, 1]]
    m = M.compute_metrics([0, 1], [0.2, 0.3], 0.5)
    assert math.isnan(m["precision"]) and "precision is undefined" in m["note"]
    m = M.compute_metrics([1, 1], [0.2, 0.9], 0.5)
    assert math.isnan(m["roc_auc"]) and "no real samples" in m["note"]
    assert math.isnan(m["specificity"])


def test_curves_by_hand():
    fpr, tpr, thresholds = M.roc_curve(Y, S)
    np.testing.assert_allclose(fpr, [0, 0, 1 / 3, 2 / 3, 2 / 3, 1])
    np.testing.assert_allclose(tpr, [0, 0.5, 0.5, 0.5, 1, 1])
    assert thresholds[0] == np.inf
    np.testing.assert_allclose(thresholds[1:], [0.8, 0.7, 0.6, 0.3, 0.1])
    precision, recall, _ = M.precision_recall_curve(Y, S)
    np.testing.assert_allclose(precision, [1, 1 / 2, 1 / 3, 2 / 4, 2 / 5])
    np.testing.assert_allclose(recall, [0.5, 0.5, 0.5, 1, 1])
    f1, _ = M.f1_curve(Y, S)
    np.testing.assert_allclose(f1, [2 / 3, 2 / 4, 2 / 5, 4 / 6, 4 / 7])
    np.testing.assert_array_equal(M.confusion_matrix([0, 1, 1, 0], [1, 1, 0, 0]), [[1, 1], [1, 1]])


# --- calibration and the temperature in evaluation ----------------------------------------------


def test_calibration_functions_by_hand():
    # BCE of logits 0 (fake) and 2 (real) at T = 2: ln 2 and ln(1 + e).
    assert binary_nll([0.0, 2.0], [1, 0], temperature=2.0) == pytest.approx(
        (LN2 + math.log(1 + math.e)) / 2
    )
    bins = reliability_bins([0.05, 0.15, 1.0, 0.95], [0, 1, 1, 0], n_bins=10)
    assert [b.count for b in bins] == [1, 1, 0, 0, 0, 0, 0, 0, 0, 2]
    assert bins[9].mean_probability == pytest.approx(0.975)
    assert bins[9].fraction_fake == pytest.approx(0.5)
    # |0 - .05| * 1 + |1 - .15| * 1 + |.5 - .975| * 2, over 4 samples.
    assert expected_calibration_error([0.05, 0.15, 1.0, 0.95], [0, 1, 1, 0], n_bins=10) == (
        pytest.approx((0.05 + 0.85 + 2 * 0.475) / 4)
    )
    table = abstention_table([0.9, 0.35, 0.55, 0.2], [1, 1, 0, 0], bounds=(0.6, 0.7))
    assert [(r.kept, r.abstained) for r in table] == [(3, 1), (2, 2)]
    assert table[0].accuracy == pytest.approx(2 / 3) and table[1].accuracy == pytest.approx(1.0)
    assert table[0].coverage == pytest.approx(3 / 4)


def test_calibration_summary_applies_the_temperature():
    logits, labels = np.array([1.0, -1.0, 3.0, -3.0, 0.5]), np.array([1, 0, 1, 1, 0])
    s = calibration_summary(logits, labels, 2.0, bounds=(0.7,), n_bins=10)
    after = 1 / (1 + np.exp(-logits / 2))
    assert s["ece_after"] == pytest.approx(expected_calibration_error(after, labels, 10))
    assert s["nll_after"] == pytest.approx(binary_nll(logits, labels, 2.0))
    assert s["nll_before"] == pytest.approx(binary_nll(logits, labels, 1.0))
    # Confidence at T = 2: .62 .62 .82 .82 .56 -> two kept at 0.7 (at T = 1 it would be four).
    assert s["abstention"][0]["kept"] == 2


def split_scores(logits: list[float], labels: list[int]) -> SplitScores:
    n = len(labels)
    z = np.asarray(logits, dtype=np.float64)
    return SplitScores(
        labels=np.asarray(labels),
        logits=z,
        variants={
            "face blanked": z / 2,
            "voice blanked": z / 3,
            "image head": z,
            "audio head": -z,
            **{name: z for name in PERMUTATIONS},
        },
        consistency=np.linspace(0, 1, n),
        face_emotion_true=np.zeros(n, int),
        face_emotion_pred=np.zeros(n, int),
        voice_emotion_true=np.zeros(n, int),
        voice_emotion_pred=np.zeros(n, int),
        image_keys=[f"i{i}" for i in range(n)],
        audio_keys=[f"a{i}" for i in range(n)],
    )


def test_evaluation_summary_uses_the_detector_temperature():
    scores = split_scores([1.0, -1.0, 3.0, -3.0, 0.4, -0.2], [1, 0, 1, 0, 0, 1])
    summary = summarise(scores, temperature=2.0, threshold=0.55, abstain_bounds=(0.7,))
    probs = 1 / (1 + np.exp(-scores.logits / 2))
    expected = M.compute_metrics(scores.labels, probs, 0.55)
    # At T = 2, 0.4 -> p = 0.550 (fake at threshold 0.55) and -0.2 -> p = 0.475 (real); only
    # the two logits of +-3 reach confidence 0.7 (at T = 1 four would).
    assert summary["metrics"]["confusion_matrix"] == expected["confusion_matrix"]
    assert summary["metrics"]["accuracy"] == pytest.approx(expected["accuracy"])
    assert summary["calibration"]["ece_calibrated"] == pytest.approx(
        expected_calibration_error(probs, scores.labels)
    )
    assert summary["abstention"][0]["kept"] == int((np.maximum(probs, 1 - probs) >= 0.7).sum()) == 2
    assert summary["temperature"] == 2.0 and summary["threshold"] == 0.55
