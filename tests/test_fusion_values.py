"""The consistency measures' values on every shape they accept, and at their bounds.

``js_divergence_from_logits``, ``consistency_from_logits`` and ``embedding_cosine`` take
(..., K) tensors: a batch (B, K), a single distribution (K,) or per-segment scores (B, S, K).
The reference values here are worked out independently in float64 numpy.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mmdeepfake.fusion import (
    LN2,
    consistency_from_logits,
    embedding_cosine,
    js_divergence_from_logits,
)


def reference_jsd(logits_a: np.ndarray, logits_b: np.ndarray) -> np.ndarray:
    """JSD in nats over the last axis, straight from its definition."""

    def softmax(z: np.ndarray) -> np.ndarray:
        e = np.exp(z - z.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)

    p, q = softmax(logits_a), softmax(logits_b)
    m = (p + q) / 2
    return 0.5 * (p * np.log(p / m)).sum(-1) + 0.5 * (q * np.log(q / m)).sum(-1)


def reference_cosine(a: np.ndarray, b: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """a . b / (max(|a|, eps) max(|b|, eps)) over the last axis."""
    norm_a = np.maximum(np.linalg.norm(a, axis=-1), eps)
    norm_b = np.maximum(np.linalg.norm(b, axis=-1), eps)
    return (a * b).sum(-1) / (norm_a * norm_b)


def test_jsd_of_per_segment_scores_is_taken_over_the_emotions():
    g = torch.Generator().manual_seed(3)
    a = torch.randn(2, 3, 7, generator=g, dtype=torch.float64) * 2
    b = torch.randn(2, 3, 7, generator=g, dtype=torch.float64) * 2
    expected = reference_jsd(a.numpy(), b.numpy())
    jsd = js_divergence_from_logits(a, b)
    assert jsd.shape == (2, 3)
    np.testing.assert_allclose(jsd.numpy(), expected, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(
        consistency_from_logits(a, b).numpy(), 1 - expected / math.log(2), rtol=1e-9
    )


def test_jsd_of_one_distribution_pair_without_a_batch():
    a = torch.tensor([2.0, 0.0, -1.0], dtype=torch.float64)
    b = torch.tensor([0.0, 1.0, 0.5], dtype=torch.float64)
    jsd = js_divergence_from_logits(a, b)
    assert jsd.shape == ()
    expected = reference_jsd(a.numpy(), b.numpy()).item()
    assert jsd.item() == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_jsd_never_leaves_zero_to_ln2_through_rounding():
    """Identical distributions give tiny negative JSDs in float32 and opposite ones a hair
    over ln 2; the clamp keeps consistency exactly within [0, 1]."""
    g = torch.Generator().manual_seed(0)
    a = torch.randn(2000, 7, generator=g) * 3
    same = js_divergence_from_logits(a, a)
    assert same.min().item() == 0.0
    assert consistency_from_logits(a, a).max().item() == 1.0

    far = torch.randn(2000, 7, generator=g) * 40
    opposite = js_divergence_from_logits(far, -far)
    assert opposite.max().item() == torch.tensor(LN2).item()
    assert consistency_from_logits(far, -far).min().item() == 0.0


def test_cosine_of_per_segment_embeddings_is_taken_over_the_features():
    g = torch.Generator().manual_seed(5)
    # norms around 0.3: below 1, so only the documented floor of 1e-6 may apply
    a = torch.randn(2, 3, 4, generator=g, dtype=torch.float64) * 0.15
    b = torch.randn(2, 3, 4, generator=g, dtype=torch.float64) * 0.15
    cosine = embedding_cosine(a, b)
    assert cosine.shape == (2, 3)
    np.testing.assert_allclose(cosine.numpy(), reference_cosine(a.numpy(), b.numpy()), rtol=1e-9)


def test_cosine_of_near_zero_embeddings_is_damped_by_the_norm_floor():
    """Norms below 1e-6 count as 1e-6: two parallel embeddings of norm 1e-7 and 2e-7 score
    1e-7 * 2e-7 / 1e-12 = 0.02, not 1, so an all-but-empty embedding reads as unrelated."""
    a = torch.tensor([[1e-7, 0.0], [0.6, 0.0]], dtype=torch.float64)
    b = torch.tensor([[2e-7, 0.0], [0.3, 0.4]], dtype=torch.float64)
    np.testing.assert_allclose(embedding_cosine(a, b).numpy(), [0.02, 0.6], rtol=1e-9)
