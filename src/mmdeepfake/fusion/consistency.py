"""Agreement measures between the face and the voice: the detector's central cue.

JSD(p, q) = 1/2 KL(p || m) + 1/2 KL(q || m), m = (p + q) / 2, in nats, bounded by ln 2.
consistency(p, q) = 1 - JSD(p, q) / ln 2, in [0, 1]; 1 means the two emotion distributions
are identical, 0 that they have disjoint support. Computed from logits with log-softmax so it
stays finite and differentiable even for very confident distributions.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

LN2 = math.log(2.0)


def js_divergence_from_logits(logits_a: torch.Tensor, logits_b: torch.Tensor) -> torch.Tensor:
    """Jensen-Shannon divergence (nats, in [0, ln 2]) of softmax(logits_a) and softmax(logits_b).

    Shapes (..., K) -> (...).
    """
    log_p = F.log_softmax(logits_a, dim=-1)
    log_q = F.log_softmax(logits_b, dim=-1)
    log_m = torch.logaddexp(log_p, log_q) - LN2
    kl_pm = (log_p.exp() * (log_p - log_m)).sum(dim=-1)
    kl_qm = (log_q.exp() * (log_q - log_m)).sum(dim=-1)
    return (0.5 * (kl_pm + kl_qm)).clamp(0.0, LN2)


def js_divergence(p: torch.Tensor, q: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Jensen-Shannon divergence (nats) of two probability tensors (..., K) -> (...)."""
    return js_divergence_from_logits(p.clamp_min(eps).log(), q.clamp_min(eps).log())


def consistency_from_logits(logits_a: torch.Tensor, logits_b: torch.Tensor) -> torch.Tensor:
    """1 - JSD / ln 2 of the two emotion distributions, in [0, 1]."""
    return 1.0 - js_divergence_from_logits(logits_a, logits_b) / LN2


def embedding_cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of two same-width embeddings (..., D) -> (...), in [-1, 1]."""
    return F.cosine_similarity(a, b, dim=-1, eps=1e-6)
