"""EmotionConsistencyModel end to end on tiny widths, and the DetectionLoss."""

from __future__ import annotations

import math

import pytest
import torch
from safetensors.torch import load_file, save_file

from mmdeepfake.encoders import EncoderOutput
from mmdeepfake.errors import ConfigError
from mmdeepfake.fusion import FUSIONS
from mmdeepfake.losses import DetectionLoss
from mmdeepfake.media.features import WINDOW_SAMPLES
from mmdeepfake.model import EmotionConsistencyModel, ModelOutput

TINY = {
    "image_encoder_kwargs": {"width": 4},
    "audio_encoder_kwargs": {"width": 4, "hidden": 8},
    "fusion_kwargs": {"hidden": 16},
    "embed_dim": 16,
}


def inputs(batch: int = 2, faces: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return (
        torch.randn(faces or batch, 3, 224, 224, generator=g),
        0.1 * torch.randn(batch, WINDOW_SAMPLES, generator=g),
    )


@pytest.mark.slow
@pytest.mark.parametrize("fusion", FUSIONS.names())
def test_model_forward_backward(fusion):
    torch.manual_seed(0)
    model = EmotionConsistencyModel(fusion=fusion, **TINY)
    out = model(*inputs())
    assert out.fake_logit.shape == (2,)
    assert out.face_emotion_logits.shape == out.voice_emotion_logits.shape == (2, 7)
    assert ((out.consistency >= 0) & (out.consistency <= 1)).all()
    assert set(out.modality_logits) == {"image", "audio"}
    losses = DetectionLoss()(out, torch.tensor([0, 1]), torch.tensor([1, -1]), torch.tensor([3, 2]))
    assert set(losses) == {"total", "detection", "auxiliary", "emotion", "consistency"}
    assert all(v.ndim == 0 and torch.isfinite(v) for v in losses.values())
    losses["total"].backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), name


@pytest.mark.slow
def test_face_groups_pool_frames_per_window():
    model = EmotionConsistencyModel(**TINY).eval()
    faces, waves = inputs(batch=2, faces=4)
    with torch.no_grad():
        out = model(faces, waves, face_groups=[[0, 1, 2], [3]])
        image = model.encode_image(faces)
        pooled = model.fuse(image.pool([[0, 1, 2], [3]]), model.encode_audio(waves))
    torch.testing.assert_close(out.fake_logit, pooled.fake_logit)
    torch.testing.assert_close(out.face_emotion_logits[1], image.emotion_logits[3])
    with pytest.raises(ValueError, match="as many face rows"):
        model(faces, waves)


def test_consistency_is_one_for_identical_emotions():
    model = EmotionConsistencyModel(fusion="mid", **TINY).eval()
    logits = torch.randn(2, 7)
    image = EncoderOutput(torch.randn(2, 16), torch.randn(2, 49, 16), logits)
    audio = EncoderOutput(torch.randn(2, 16), torch.randn(2, 32, 16), logits.clone())
    torch.testing.assert_close(model.fuse(image, audio).consistency, torch.ones(2))


@pytest.mark.slow
def test_state_dict_round_trip_through_safetensors(tmp_path):
    torch.manual_seed(0)
    model = EmotionConsistencyModel(fusion="attention", **TINY).eval()
    save_file(model.state_dict(), str(tmp_path / "model.safetensors"))
    clone = EmotionConsistencyModel(**model.config).eval()
    clone.load_state_dict(load_file(str(tmp_path / "model.safetensors")))
    with torch.no_grad():
        a, b = model(*inputs()), clone(*inputs())
    torch.testing.assert_close(a.fake_logit, b.fake_logit)
    torch.testing.assert_close(a.consistency, b.consistency)
    torch.testing.assert_close(a.fusion_weights, b.fusion_weights)


def test_config_errors():
    with pytest.raises(ConfigError, match="encodes audio"):
        EmotionConsistencyModel(image_encoder="cnn_lstm", **TINY)
    with pytest.raises(ConfigError, match="Unknown fusion strategy"):
        EmotionConsistencyModel(fusion="nope", **TINY)


def test_detection_loss_by_hand():
    ln2 = math.log(2)
    p_face = torch.tensor([[0.5, 0.5] + [0.0] * 5, [1.0] + [0.0] * 6])
    p_voice = torch.tensor([[0.5, 0.5] + [0.0] * 5, [0.0, 1.0] + [0.0] * 5])
    out = ModelOutput(
        fake_logit=torch.tensor([0.0, 2.0]),
        face_emotion_logits=p_face.clamp_min(1e-30).log(),
        voice_emotion_logits=p_voice.clamp_min(1e-30).log(),
        consistency=torch.tensor([0.9, 0.2]),
        modality_logits={"image": torch.tensor([0.0, 0.0]), "audio": torch.tensor([0.0, 0.0])},
    )
    loss = DetectionLoss(
        emotion_weight=0.5, consistency_weight=2.0, margin=0.5, auxiliary_weight=0.1
    )
    got = loss(out, torch.tensor([0, 1]), torch.tensor([1, -1]), torch.tensor([-1, 1]))
    detection = (ln2 + math.log(1 + math.exp(-2.0))) / 2
    emotion = (ln2 + 0.0) / 2  # face row 0 labelled happy (p = .5); voice row 1 happy (p = 1)
    consistency = (0.1 + max(0.0, 0.5 - 0.8)) / 2  # real: d = 0.1; fake: relu(0.5 - 0.8)
    assert got["detection"].item() == pytest.approx(detection)
    assert got["auxiliary"].item() == pytest.approx(ln2)
    assert got["emotion"].item() == pytest.approx(emotion, abs=1e-6)
    assert got["consistency"].item() == pytest.approx(consistency)
    total = detection + 0.1 * ln2 + 0.5 * emotion + 2.0 * consistency
    assert got["total"].item() == pytest.approx(total, abs=1e-6)
    fake_close = loss(out, torch.tensor([1, 1]))
    assert fake_close["consistency"].item() == pytest.approx((0.5 - 0.1) / 2)


def test_detection_loss_without_emotion_labels_still_backpropagates():
    logit = torch.zeros(2, requires_grad=True)
    emo = torch.zeros(2, 7, requires_grad=True)
    out = ModelOutput(logit, emo, emo, torch.ones(2))
    got = DetectionLoss()(out, torch.tensor([1.0, 0.0]), torch.tensor([-1, -1]), None)
    assert got["emotion"].item() == 0.0 and got["auxiliary"].item() == 0.0
    got["total"].backward()
    assert logit.grad is not None
