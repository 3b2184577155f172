"""Is an input like the data a model was trained on? A per-modality unfamiliar-input guard.

A detector trained on one kind of media (for example the synthetic faces and voices of
``mmdeepfake-synth``) still answers with confident probabilities on anything else: its verdict
on a real photograph says nothing, yet it looks like any other. The guard describes where the
model's own embeddings of the training data lie, and flags inputs whose embeddings fall outside.

Method, per modality: the class-conditional means mu_k (k = real, fake) of the training
embeddings and one shared covariance, shrunk towards a scaled identity with the Ledoit-Wolf
formula (embeddings have tens to hundreds of dimensions and a few thousand samples, so the
plain covariance is ill-conditioned). The distance of an embedding e is the Mahalanobis
distance to the nearest class mean, d(e) = min_k sqrt((e - mu_k)^T S^-1 (e - mu_k)). The limit
is a high quantile (default 99th percentile) of the distances of the *validation* split, so
about 1% of in-distribution inputs are flagged by construction, and a clip is judged by the
median distance of its face crops or voice windows.

The fitted arrays are buffers of :class:`DomainGuard`, so they are saved in
``model.safetensors`` with the weights and restored by ``from_pretrained``; a model saved
before the guard existed simply has none (``DomainGuard.fitted`` is false).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from mmdeepfake.calibration import fit_temperature
from mmdeepfake.data.clip_labels import head_targets, read_clip_labels
from mmdeepfake.data.streaming import build_split_loader
from mmdeepfake.data.video_samples import split_samples
from mmdeepfake.metrics import roc_auc

MODALITIES = ("image", "audio")
_FIELDS = ("means", "precision", "limit")


@dataclass(frozen=True)
class DomainCheck:
    """How far one modality of one input lies from the training data, and the verdict."""

    distance: float | None  # median Mahalanobis distance of the crops / windows; None: no guard
    limit: float | None
    familiar: bool | None  # None when the model has no guard for this modality

    def to_dict(self) -> dict[str, Any]:
        return {"distance": self.distance, "limit": self.limit, "familiar": self.familiar}


#: The ridge added to every shrunk covariance, far below any real embedding's variance.
MIN_VARIANCE = 1e-12


def shrunk_covariance(centered: np.ndarray) -> tuple[np.ndarray, float]:
    """Ledoit-Wolf shrinkage of the covariance of ``centered`` (N, D) rows; returns (S, alpha).

    S = (1 - alpha) * C + alpha * (tr(C) / D) * I, with alpha estimated from the data
    (Ledoit & Wolf, 2004), which keeps S well conditioned when N is not much larger than D.
    """
    x = np.asarray(centered, dtype=np.float64)
    n, d = x.shape
    cov = x.T @ x / n
    mu = np.trace(cov) / d
    target_gap = np.sum((cov - mu * np.eye(d)) ** 2)
    # mean over samples of ||x x^T - C||_F^2 = ||x||^4 - 2 x^T C x + ||C||_F^2
    sq = np.sum(x**2, axis=1)
    spread = np.mean(sq**2 - 2 * np.einsum("ni,ij,nj->n", x, cov, x) + np.sum(cov**2)) / n
    alpha = 1.0 if target_gap <= 0 else float(min(spread, target_gap) / target_gap)
    # Samples of a class that are all alike (a dataset with one clip per class) leave C, and
    # the estimate of alpha, degenerate: a tiny ridge keeps S invertible.
    return (1 - alpha) * cov + (alpha * mu + MIN_VARIANCE) * np.eye(d), alpha


class DomainGuard(nn.Module):
    """Per-modality description of the training embeddings and the familiarity limit.

    Buffers ``{modality}_means`` (K, D), ``{modality}_precision`` (D, D) and ``{modality}_limit``
    () exist only for fitted modalities; loading a state dict creates them from the saved
    tensors, so the same module loads models with and without a guard.
    """

    def fitted(self, modality: str) -> bool:
        return hasattr(self, f"{modality}_limit")

    def fit(
        self,
        modality: str,
        train: np.ndarray | torch.Tensor,
        labels: np.ndarray | torch.Tensor,
        validation: np.ndarray | torch.Tensor,
        *,
        quantile: float = 0.99,
    ) -> dict[str, float]:
        """Fit one modality from training embeddings (N, D) with their class labels, and set
        the limit to ``quantile`` of the validation distances. Returns a short summary."""
        if modality not in MODALITIES:
            raise ValueError(f"modality must be one of {MODALITIES}, got {modality!r}")
        x = _numpy(train)
        y = _numpy(labels).astype(np.int64).reshape(-1)
        if x.ndim != 2 or len(x) != len(y) or len(x) < 2:
            raise ValueError(f"need (N, D) embeddings with N >= 2 labels, got {x.shape}, {y.shape}")
        classes = sorted(set(y.tolist()))
        means = np.stack([x[y == k].mean(axis=0) for k in classes])
        centered = x - means[np.searchsorted(classes, y)]
        cov, alpha = shrunk_covariance(centered)
        precision = np.linalg.inv(cov)
        self._set(modality, means, precision, np.asarray(np.inf))
        val_distances = self.distances(modality, _as_tensor(validation)).numpy()
        limit = float(np.quantile(val_distances, quantile))
        self._set(modality, means, precision, np.asarray(limit))
        train_distances = self.distances(modality, _as_tensor(x)).numpy()
        return {
            "limit": limit,
            "quantile": quantile,
            "shrinkage": alpha,
            "train_samples": len(x),
            "validation_samples": len(val_distances),
            "familiar_share_train": float(np.mean(train_distances <= limit)),
            "familiar_share_validation": float(np.mean(val_distances <= limit)),
        }

    def limit(self, modality: str) -> float | None:
        return float(getattr(self, f"{modality}_limit")) if self.fitted(modality) else None

    @torch.no_grad()
    def distances(self, modality: str, embeddings: torch.Tensor) -> torch.Tensor:
        """Mahalanobis distance (N,) of each embedding row to the nearest class mean."""
        means = getattr(self, f"{modality}_means")
        precision = getattr(self, f"{modality}_precision")
        diff = embeddings.to(means)[:, None, :] - means[None, :, :]  # (N, K, D)
        squared = torch.einsum("nkd,de,nke->nk", diff, precision, diff).clamp_min(0)
        return squared.min(dim=1).values.sqrt().cpu()

    def check(self, modality: str, embeddings: torch.Tensor) -> DomainCheck:
        """Judge one input from the embeddings of its crops or windows (median distance)."""
        limit = self.limit(modality)
        if limit is None:
            return DomainCheck(distance=None, limit=None, familiar=None)
        distance = float(self.distances(modality, embeddings.float()).median())
        return DomainCheck(
            distance=round(distance, 4), limit=round(limit, 4), familiar=distance <= limit
        )

    def familiar_share(self, modality: str, embeddings: torch.Tensor) -> float | None:
        """Share of rows (one per sample) within the limit; None without a guard."""
        limit = self.limit(modality)
        if limit is None or len(embeddings) == 0:
            return None
        return float((self.distances(modality, embeddings.float()) <= limit).float().mean())

    def _set(
        self, modality: str, means: np.ndarray, precision: np.ndarray, limit: np.ndarray
    ) -> None:
        device = next((b.device for b in self.buffers()), torch.device("cpu"))
        for name, value in zip(_FIELDS, (means, precision, limit)):
            key = f"{modality}_{name}"
            tensor = torch.as_tensor(np.asarray(value), dtype=torch.float32, device=device)
            if key in self._buffers:
                del self._buffers[key]
            self.register_buffer(key, tensor)

    def _load_from_state_dict(
        self, state_dict: Mapping[str, Any], prefix: str, *args: Any, **kwargs: Any
    ) -> None:
        # Create the buffers a saved guard has (their shapes depend on the encoders), so that
        # models saved with and without a guard both load through the normal state-dict path.
        for modality in MODALITIES:
            keys = [f"{prefix}{modality}_{name}" for name in _FIELDS]
            if all(k in state_dict for k in keys):
                self._set(modality, *(state_dict[k].cpu().numpy() for k in keys))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


def _numpy(value: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().float().cpu().numpy()
    return np.asarray(value, dtype=np.float64)


def _as_tensor(value: np.ndarray | torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(_numpy(value), dtype=torch.float32)


# --- fitting a detector's guard from a dataset ---------------------------------------------------


@dataclass
class SplitEmbeddings:
    """The model's view of one dataset split: one face crop and one voice window per sample."""

    image: torch.Tensor  # (N, D_image) embeddings
    audio: torch.Tensor  # (N, D_audio)
    labels: np.ndarray  # (N,) 0 real, 1 fake
    image_logits: np.ndarray  # (N,) the image head's fake logit
    audio_logits: np.ndarray  # (N,)
    fake_logits: np.ndarray  # (N,) the fused fake logit
    image_labels: np.ndarray  # (N,) the image head's own target (visual_fake), -1 unknown
    audio_labels: np.ndarray  # (N,) the audio head's own target (audio_fake), -1 unknown


@torch.inference_mode()
def embed_split(
    detector: Any, storage: Any, index: Any, split: str, *, seed: int = 0, batch_size: int = 32
) -> SplitEmbeddings:
    """Run the detector's encoders over a split the way training sees it (same loader, same
    face crops, one voice window per sample, videos without extracted frames decoded) and keep
    the embeddings and head logits, with the heads' own targets where the dataset's clips.csv
    gives them."""
    samples = split_samples(index, split, seed, clip_labels=read_clip_labels(storage, index))
    model = detector.model
    loader = build_split_loader(
        storage,
        index,
        split,
        batch_size,
        seed=seed,
        samples=samples,
        face_margin=detector.face_margin,
        preprocess=detector.preprocess,
    )
    model.eval()
    parts: dict[str, list] = {
        k: [] for k in ("image", "audio", "labels", "il", "al", "fl", "ilabels", "alabels")
    }
    device = detector.device
    for batch in loader:
        if batch["faces"] is None:
            continue
        image_out = model.encode_image(batch["faces"].to(device))
        audio_out = model.encode_audio(batch["waves"].to(device))
        fused = model.fuse(image_out, audio_out)
        parts["image"].append(image_out.embedding.float().cpu())
        parts["audio"].append(audio_out.embedding.float().cpu())
        parts["labels"].append(batch["labels"].cpu().numpy())
        parts["ilabels"].append(batch["image_labels"].cpu().numpy())
        parts["alabels"].append(batch["audio_labels"].cpu().numpy())
        parts["il"].append(model.head_logit("image", image_out.embedding).float().cpu().numpy())
        parts["al"].append(model.head_logit("audio", audio_out.embedding).float().cpu().numpy())
        parts["fl"].append(fused.fake_logit.float().cpu().numpy())
    if not parts["image"]:
        raise ValueError(f"the {split} split gave no usable samples")
    return SplitEmbeddings(
        image=torch.cat(parts["image"]),
        audio=torch.cat(parts["audio"]),
        labels=np.concatenate(parts["labels"]).astype(np.int64),
        image_logits=np.concatenate(parts["il"]),
        audio_logits=np.concatenate(parts["al"]),
        fake_logits=np.concatenate(parts["fl"]),
        image_labels=np.concatenate(parts["ilabels"]).astype(np.int64),
        audio_labels=np.concatenate(parts["alabels"]).astype(np.int64),
    )


def fit_detector_guard(
    detector: Any,
    train: SplitEmbeddings,
    validation: SplitEmbeddings,
    *,
    quantile: float = 0.99,
    source: str | None = None,
) -> dict[str, Any]:
    """Fit ``detector``'s guard and its one-modality head calibration; record both in its
    metadata (``domain_guard``, ``modality_calibration``) and return that record.

    Each unimodal head gets its own temperature, fitted on the validation split like the fused
    logit's: the heads are trained as auxiliary outputs and their scale differs from the fused
    logit's, so the model's temperature would not calibrate them. Their validation ROC-AUC is
    recorded too, so a one-modality verdict can say whether the head is informative at all.
    Both are fitted against the labels the head learns (:func:`head_targets`: ``visual_fake`` /
    ``audio_fake`` where clips.csv gives them, the clip's label elsewhere); ``label`` records
    which.
    """

    guard = detector.model.domain_guard
    record: dict[str, Any] = {
        "method": "Mahalanobis distance to the nearest class mean, "
        "Ledoit-Wolf shrunk shared covariance; limit = quantile of "
        "validation distances",
        "quantile": quantile,
    }
    if source:
        record["fitted_on"] = source
    heads: dict[str, Any] = {}
    for modality in MODALITIES:
        record[modality] = guard.fit(
            modality,
            getattr(train, modality),
            train.labels,
            getattr(validation, modality),
            quantile=quantile,
        )
        logits = getattr(validation, f"{modality}_logits")
        targets, used = head_targets(
            modality, validation.labels, getattr(validation, f"{modality}_labels")
        )
        two_classes = len(set(targets.tolist())) == 2
        heads[modality] = {
            "temperature": float(fit_temperature(logits, targets)) if two_classes else 1.0,
            "val_auc": float(roc_auc(targets, logits)) if two_classes else None,
            "label": used,
        }
    metadata = dict(detector.metadata)
    metadata["domain_guard"] = record
    metadata["modality_calibration"] = heads
    detector.with_config(metadata=metadata)
    return record


def familiar_shares(detector: Any, split: SplitEmbeddings) -> dict[str, float | None]:
    """Share of a split's samples that the detector's guard calls familiar, per modality."""
    guard = detector.model.domain_guard
    return {m: guard.familiar_share(m, getattr(split, m)) for m in MODALITIES}
