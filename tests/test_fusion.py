"""Fusion strategies and the face/voice consistency measures."""

from __future__ import annotations

import math

import pytest
import torch

from mmdeepfake.encoders import EncoderOutput
from mmdeepfake.errors import ConfigError
from mmdeepfake.fusion import (
    FUSIONS,
    LN2,
    consistency_from_logits,
    create_fusion,
    embedding_cosine,
    js_divergence,
    js_divergence_from_logits,
)
from mmdeepfake.fusion.late import combine_logits


def encoder_output(dim: int, tokens: int, seed: int) -> EncoderOutput:
    g = torch.Generator().manual_seed(seed)
    return EncoderOutput(
        embedding=torch.randn(2, dim, generator=g).requires_grad_(),
        tokens=torch.randn(2, tokens, dim, generator=g).requires_grad_(),
        emotion_logits=torch.randn(2, 7, generator=g).requires_grad_(),
    )


@pytest.mark.parametrize("name", FUSIONS.names())
def test_fusion_shapes_and_gradients(name):
    torch.manual_seed(0)
    fusion = create_fusion(name, image_dim=12, audio_dim=20, hidden=16)
    image, audio = encoder_output(12, 49, 1), encoder_output(20, 32, 2)
    out = fusion(image, audio)
    assert out.fake_logit.shape == (2,)
    assert set(out.modality_logits) == {"image", "audio"}
    assert all(v.shape == (2,) for v in out.modality_logits.values())
    if out.weights is not None:
        assert out.weights.shape == (2, 2)
        torch.testing.assert_close(out.weights.sum(-1), torch.ones(2))
        assert (out.weights >= 0).all()
    loss = out.fake_logit.sum() + sum(v.sum() for v in out.modality_logits.values())
    loss.backward()
    for pname, param in fusion.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), pname
    assert image.embedding.grad is not None and audio.embedding.grad is not None


@pytest.mark.parametrize("name", FUSIONS.names())
def test_fusion_state_dict_round_trip(name):
    a = create_fusion(name, image_dim=8, audio_dim=8, hidden=8).eval()
    b = create_fusion(name, image_dim=8, audio_dim=8, hidden=8).eval()
    b.load_state_dict(a.state_dict())
    image, audio = encoder_output(8, 5, 3), encoder_output(8, 4, 4)
    with torch.no_grad():
        torch.testing.assert_close(a(image, audio).fake_logit, b(image, audio).fake_logit)


def test_late_fusion_averages_logits_or_probabilities():
    image, audio = encoder_output(8, 3, 5), encoder_output(8, 3, 6)
    out = create_fusion("late", image_dim=8, audio_dim=8, hidden=8).eval()(image, audio)
    s = out.modality_logits
    torch.testing.assert_close(out.fake_logit, (s["image"] + s["audio"]) / 2)
    assert out.weights is None
    prob = create_fusion("late", image_dim=8, audio_dim=8, hidden=8, combine="prob").eval()
    out = prob(image, audio)
    s = out.modality_logits
    expected = (torch.sigmoid(s["image"]) + torch.sigmoid(s["audio"])) / 2
    torch.testing.assert_close(torch.sigmoid(out.fake_logit), expected)


def test_combine_logits_by_hand():
    logits = torch.tensor([[2.0, -1.0]])
    weights = torch.tensor([[0.25, 0.75]])
    assert combine_logits(logits, weights, "logit").item() == pytest.approx(0.5 - 0.75)
    p = 0.25 / (1 + math.exp(-2)) + 0.75 / (1 + math.exp(1))
    assert combine_logits(logits, weights, "prob").item() == pytest.approx(math.log(p / (1 - p)))


@pytest.mark.parametrize("confidence", ["detection", "emotion"])
def test_adaptive_weights_follow_the_formula(confidence):
    image, audio = encoder_output(8, 3, 7), encoder_output(8, 3, 8)
    fusion = create_fusion(
        "adaptive", image_dim=8, audio_dim=8, hidden=8, tau=3.0, confidence=confidence
    ).eval()
    out = fusion(image, audio)
    s = torch.stack([out.modality_logits["image"], out.modality_logits["audio"]], -1)
    if confidence == "detection":
        r = torch.maximum(torch.sigmoid(s), 1 - torch.sigmoid(s))
    else:
        r = torch.stack(
            [
                image.emotion_logits.softmax(-1).max(-1).values,
                audio.emotion_logits.softmax(-1).max(-1).values,
            ],
            -1,
        )
    alpha = torch.softmax(3.0 * r, -1)
    torch.testing.assert_close(out.weights, alpha)
    torch.testing.assert_close(out.fake_logit, (alpha * s).sum(-1))


def test_adaptive_with_zero_temperature_is_late_fusion():
    image, audio = encoder_output(8, 3, 9), encoder_output(8, 3, 10)
    late = create_fusion("late", image_dim=8, audio_dim=8, hidden=8).eval()
    adaptive = create_fusion("adaptive", image_dim=8, audio_dim=8, hidden=8, tau=0.0).eval()
    adaptive.load_state_dict(late.state_dict())
    torch.testing.assert_close(adaptive(image, audio).fake_logit, late(image, audio).fake_logit)


def test_bad_options_are_config_errors():
    with pytest.raises(ConfigError, match="Unknown fusion strategy 'fancy'.*mid"):
        create_fusion("fancy", image_dim=8, audio_dim=8)
    with pytest.raises(ConfigError, match="combine"):
        create_fusion("late", image_dim=8, audio_dim=8, combine="max")
    with pytest.raises(ConfigError, match="confidence"):
        create_fusion("adaptive", image_dim=8, audio_dim=8, confidence="vibes")


def test_js_divergence_hand_checked_values():
    p = torch.tensor([[1.0, 0.0], [0.5, 0.5], [0.3, 0.7]])
    q = torch.tensor([[0.0, 1.0], [1.0, 0.0], [0.3, 0.7]])
    jsd = js_divergence(p, q)
    # disjoint -> ln 2; [.5,.5] vs [1,0]: m = [.75,.25], JSD = 3/4 ln(4/3); identical -> 0
    torch.testing.assert_close(
        jsd, torch.tensor([LN2, 0.75 * math.log(4 / 3), 0.0]), atol=1e-6, rtol=0
    )
    torch.testing.assert_close(js_divergence(q, p), jsd)


def test_consistency_bounds_and_identity():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(64, 7, generator=g) * 5
    b = torch.randn(64, 7, generator=g) * 5
    c = consistency_from_logits(a, b)
    assert ((c >= 0) & (c <= 1)).all()
    torch.testing.assert_close(consistency_from_logits(a, a), torch.ones(64))
    torch.testing.assert_close(
        consistency_from_logits(a, a + 3.0), torch.ones(64)
    )  # shift-invariant
    far = consistency_from_logits(torch.tensor([[50.0, 0.0]]), torch.tensor([[0.0, 50.0]]))
    assert far.item() == pytest.approx(0.0, abs=1e-6)
    torch.testing.assert_close(js_divergence_from_logits(a, b), (1 - c) * LN2)


def test_js_divergence_gradient_is_finite_for_confident_distributions():
    a = torch.tensor([[80.0, -80.0, 0.0]], requires_grad=True)
    b = torch.tensor([[-80.0, 80.0, 0.0]], requires_grad=True)
    js_divergence_from_logits(a, b).sum().backward()
    assert torch.isfinite(a.grad).all() and torch.isfinite(b.grad).all()


def test_embedding_cosine():
    a = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    b = torch.tensor([[0.0, 2.0], [2.0, 2.0]])
    torch.testing.assert_close(embedding_cosine(a, b), torch.tensor([0.0, 1.0]))
