"""Score a dataset split with a Detector and write its metrics, plots and report.

One pass over the split (streamed with :mod:`mmdeepfake.data.streaming`, nothing copied to
disk) runs each encoder once per batch and then the cheap fusion block several times, to ask
*which evidence the decision rests on*:

- the detector itself, with its calibration temperature applied;
- ablations: the face or the voice input blanked (an all-zero normalised face, a silent
  window), and the fusion's own single-modality heads (the unimodal baselines that every
  fused result is reported beside);
- the emotion disagreement ``1 - consistency`` used alone as a score;
- permutation importance: the drop in ROC-AUC when one part of the evidence (the whole face
  view, i.e. the face/voice pairing; the face or voice emotion logits; the face or voice
  embeddings) is shuffled across the samples of a batch. Batches are drawn in a shuffled
  order, so a shuffle within a batch mixes real and fake samples.

Where the dataset's labels/clips.csv names categories, the scores are also broken down per
category and each single-modality head is scored against its own modality's label
(:func:`category_summary`); ``audit=("silence",)`` scores the split a second time with the
silence at both ends of every recording trimmed, to show whether the scores lean on it
(:func:`silence_audit`).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from mmdeepfake import metrics as M
from mmdeepfake.calibration import (
    DEFAULT_ABSTAIN_BOUNDS,
    abstention_table,
    expected_calibration_error,
    sigmoid,
)
from mmdeepfake.data.clip_labels import ClipLabel, read_clip_labels
from mmdeepfake.data.layout import LABEL_NAMES, DatasetIndex, clip_id, scan_dataset
from mmdeepfake.data.storage import Storage, open_storage
from mmdeepfake.data.streaming import build_split_loader
from mmdeepfake.errors import ConfigError, DatasetError
from mmdeepfake.loading import load_detector
from mmdeepfake.media.silence import SILENCE_MIN_SECONDS, SILENCE_THRESHOLD_DB
from mmdeepfake.outputs import output_root
from mmdeepfake.reports import plots
from mmdeepfake.reports.report import build_report

if TYPE_CHECKING:
    from mmdeepfake.detector import Detector

log = logging.getLogger("mmdeepfake.evaluate")

#: Scores of the ablation table: name -> what it is. All but the last are logits.
ABLATIONS: dict[str, str] = {
    "detector": "the detector (face + voice), calibrated",
    "face blanked": "the detector with an all-zero face input (voice only)",
    "voice blanked": "the detector with a silent voice input (face only)",
    "image head": "the fusion's single-modality face head (unimodal baseline)",
    "audio head": "the fusion's single-modality voice head (unimodal baseline)",
    "emotion disagreement": "1 - face/voice emotion consistency used alone as the score",
}
#: Permutation-importance variants: name -> which part of the evidence is shuffled.
PERMUTATIONS: dict[str, str] = {
    "face/voice pairing": "the whole face view shuffled across samples (breaks the pairing)",
    "face emotion": "face emotion logits shuffled",
    "voice emotion": "voice emotion logits shuffled",
    "face embedding": "face embedding and tokens shuffled",
    "voice embedding": "voice embedding and tokens shuffled",
}
#: Shortcut audits of ``evaluate(audit=...)``: name -> what is taken away before rescoring.
AUDITS: dict[str, str] = {
    "silence": "leading and trailing silence trimmed from every recording",
}
#: Per-modality labels of labels/clips.csv, by the head scored against them.
MODALITY_LABELS: dict[str, str] = {"image": "visual_fake", "audio": "audio_fake"}
EVALUATION_PLOTS = (
    "confusion_matrix",
    "roc_curve",
    "precision_recall_curve",
    "f1_vs_threshold",
    "sensitivity_specificity",
    "prediction_distribution",
    "precision_recall_threshold",
    "feature_importance",
    "reliability_diagram",
)
PREDICTION_COLUMNS = (
    "image_key",
    "audio_key",
    "label",
    "fake_probability",
    "image_head_probability",
    "audio_head_probability",
    "consistency",
    "face_emotion_true",
    "face_emotion_pred",
    "voice_emotion_true",
    "voice_emotion_pred",
)


@dataclass
class SplitScores:
    """Per-sample outputs of one pass over a split (arrays aligned with ``labels``).

    ``logits`` are the detector's fused logits *before* temperature; ``variants`` holds the
    ablation and permutation scores by name (see ``ABLATIONS`` and ``PERMUTATIONS``).
    """

    labels: np.ndarray
    logits: np.ndarray
    variants: dict[str, np.ndarray]
    consistency: np.ndarray
    face_emotion_true: np.ndarray
    face_emotion_pred: np.ndarray
    voice_emotion_true: np.ndarray
    voice_emotion_pred: np.ndarray
    image_keys: list[str]
    audio_keys: list[str]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    # The unfamiliar-input guard's distance per sample and its limit, per modality it covers.
    domain_distances: dict[str, np.ndarray] = field(default_factory=dict)
    domain_limits: dict[str, float] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.labels.size)


# --- loading ---------------------------------------------------------------------------------


def open_dataset(
    *,
    bucket: str | None = None,
    prefix: str = "dataset/",
    endpoint_url: str | None = None,
    data_dir: str | None = None,
) -> tuple[Storage, DatasetIndex]:
    """The dataset storage and its index, from an S3 bucket or a local folder (not both)."""
    if bool(bucket) == bool(data_dir):
        raise ConfigError(
            "give the dataset either with --bucket BUCKET (S3) or with --data DIR (a local "
            "folder), not both and not neither"
        )
    if bucket:
        storage = open_storage(f"s3://{bucket}/", endpoint_url=endpoint_url)
        return storage, scan_dataset(storage, prefix)
    root = Path(str(data_dir)).expanduser()
    if not root.is_dir():
        raise ConfigError(
            f"--data {data_dir}: no such folder; give the folder holding frames/ and audio/"
        )
    storage = open_storage(root)
    return storage, scan_dataset(storage, prefix if (root / prefix).is_dir() else "")


# --- scoring -----------------------------------------------------------------------------------


def _expand(out: Any, n: int) -> Any:
    """A one-row EncoderOutput repeated (as a view) to ``n`` rows."""
    return replace(
        out,
        embedding=out.embedding.expand(n, -1),
        tokens=out.tokens.expand(n, -1, -1),
        emotion_logits=out.emotion_logits.expand(n, -1),
    )


def _permuted(out: Any, perm: Any, fields: Sequence[str]) -> Any:
    return replace(out, **{name: getattr(out, name)[perm] for name in fields})


def score_split(
    detector: Detector,
    storage: Storage,
    index: DatasetIndex,
    split: str = "test",
    *,
    batch_size: int = 16,
    seed: int = 0,
    num_workers: int = 0,
    prefetch: int = 8,
    s3_reader: str = "auto",
    progress: bool = False,
    trim_silence: bool = False,
) -> SplitScores:
    """Run the detector, its ablations and permutations over every pair of ``split``.

    ``trim_silence`` scores each recording without its leading and trailing silence (the
    silence audit; see :func:`mmdeepfake.media.silence.trim_silence`).
    """
    loader = build_split_loader(
        storage,
        index,
        split,
        batch_size,
        seed=seed,
        shuffle=True,
        num_workers=num_workers,
        prefetch=prefetch,
        s3_reader=s3_reader,
        face_margin=detector.face_margin,
        preprocess=detector.preprocess,
        trim_silence=trim_silence,
    )
    model = detector.model
    device = detector.device
    was_training = detector.training
    detector.eval()
    generator = torch.Generator().manual_seed(seed)
    parts: dict[str, list[np.ndarray]] = {}
    keys: dict[str, list[str]] = {"image": [], "audio": []}
    skipped: list[tuple[str, str]] = []
    blank: dict[str, Any] = {}

    def keep(name: str, values: Any) -> None:
        parts.setdefault(name, []).append(values.detach().float().cpu().numpy())

    batches = loader
    if progress:
        from tqdm.auto import tqdm

        batches = tqdm(loader, desc=f"scoring {split}", unit="batch", disable=None)  # tty only
    try:
        with torch.inference_mode():
            for batch in batches:
                skipped.extend((s.key, s.reason) for s in batch["skipped"])
                if batch["faces"] is None:
                    continue
                faces, waves = batch["faces"].to(device), batch["waves"].to(device)
                n = faces.shape[0]
                if not blank:
                    blank["image"] = model.encode_image(torch.zeros_like(faces[:1]))
                    blank["audio"] = model.encode_audio(torch.zeros_like(waves[:1]))
                image, audio = model.encode_image(faces), model.encode_audio(waves)
                out = model.fuse(image, audio)
                for modality, encoded in (("image", image), ("audio", audio)):
                    if model.domain_guard.fitted(modality):
                        keep(
                            f"{modality} distance",
                            model.domain_guard.distances(modality, encoded.embedding),
                        )
                keep("logits", out.fake_logit)
                keep("consistency", out.consistency)
                keep("face_emotion_pred", out.face_emotion_logits.argmax(-1))
                keep("voice_emotion_pred", out.voice_emotion_logits.argmax(-1))
                keep("image head", out.modality_logits["image"])
                keep("audio head", out.modality_logits["audio"])
                keep("face blanked", model.fuse(_expand(blank["image"], n), audio).fake_logit)
                keep("voice blanked", model.fuse(image, _expand(blank["audio"], n)).fake_logit)
                perm = torch.randperm(n, generator=generator).to(device)
                everything = ("embedding", "tokens", "emotion_logits")
                variants = {
                    "face/voice pairing": (_permuted(image, perm, everything), audio),
                    "face emotion": (_permuted(image, perm, ("emotion_logits",)), audio),
                    "voice emotion": (image, _permuted(audio, perm, ("emotion_logits",))),
                    "face embedding": (_permuted(image, perm, ("embedding", "tokens")), audio),
                    "voice embedding": (image, _permuted(audio, perm, ("embedding", "tokens"))),
                }
                for name, (img, aud) in variants.items():
                    keep(name, model.fuse(img, aud).fake_logit)
                keep("labels", batch["labels"])
                keep("face_emotion_true", batch["face_emotions"])
                keep("voice_emotion_true", batch["voice_emotions"])
                keys["image"].extend(batch["image_keys"])
                keys["audio"].extend(batch["audio_keys"])
    finally:
        detector.train(was_training)
    if not parts:
        raise DatasetError(
            f"no sample of split {split!r} could be scored ({len(skipped)} skipped; first: "
            f"{skipped[0] if skipped else 'none'}); check the data with mmdeepfake-train's log"
        )
    cat = {name: np.concatenate(chunks) for name, chunks in parts.items()}
    variant_names = ("image head", "audio head", "face blanked", "voice blanked", *PERMUTATIONS)
    return SplitScores(
        labels=cat["labels"].astype(np.int64),
        logits=cat["logits"].astype(np.float64),
        variants={name: cat[name].astype(np.float64) for name in variant_names},
        consistency=cat["consistency"].astype(np.float64),
        face_emotion_true=cat["face_emotion_true"].astype(np.int64),
        face_emotion_pred=cat["face_emotion_pred"].astype(np.int64),
        voice_emotion_true=cat["voice_emotion_true"].astype(np.int64),
        voice_emotion_pred=cat["voice_emotion_pred"].astype(np.int64),
        image_keys=keys["image"],
        audio_keys=keys["audio"],
        skipped=skipped,
        domain_distances={
            m: cat[f"{m} distance"].astype(np.float64)
            for m in ("image", "audio")
            if f"{m} distance" in cat
        },
        domain_limits={
            m: limit
            for m in ("image", "audio")
            if (limit := model.domain_guard.limit(m)) is not None
        },
    )


# --- summarising -------------------------------------------------------------------------------


def _ablation_scores(scores: SplitScores, temperature: float) -> dict[str, np.ndarray]:
    """Probability-like scores for each ablation row (temperature on the fused rows only)."""
    out = {"detector": sigmoid(scores.logits / temperature)}
    for name in ("face blanked", "voice blanked"):
        out[name] = sigmoid(scores.variants[name] / temperature)
    for name in ("image head", "audio head"):
        out[name] = sigmoid(scores.variants[name])
    out["emotion disagreement"] = 1.0 - scores.consistency
    return out


def _emotion_accuracy(true: np.ndarray, pred: np.ndarray) -> dict[str, Any]:
    known = true >= 0
    n = int(known.sum())
    return {
        "accuracy": float((true[known] == pred[known]).mean()) if n else math.nan,
        "n_labelled": n,
    }


def clip_scores(
    image_keys: Sequence[str], labels: np.ndarray, probs: np.ndarray
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(clip ids, labels, mean fake probability) with one entry per clip.

    A split is scored in pairs (one face frame with a voice recording); a clip gives several
    pairs, one per frame. A clip is named by the clip id of its face file, and its score is the
    mean probability of its pairs: the answer a user gets for the whole clip.
    """
    groups: dict[str, list[int]] = {}
    for i, key in enumerate(image_keys):
        groups.setdefault(clip_id(key), []).append(i)
    clips = list(groups)
    clip_labels = np.array([int(labels[groups[c][0]]) for c in clips], dtype=np.int64)
    clip_probs = np.array([float(np.mean(probs[groups[c]])) for c in clips])
    return clips, clip_labels, clip_probs


def summarise(
    scores: SplitScores,
    *,
    temperature: float = 1.0,
    threshold: float = 0.5,
    abstain_bounds: Sequence[float] = DEFAULT_ABSTAIN_BOUNDS,
) -> dict[str, Any]:
    """Every number of the evaluation, JSON-ready (NaN where undefined).

    ``metrics`` count pairs (``n``, ``pairs``: one face frame with a voice recording);
    ``clip_metrics`` the same numbers over clips (``clips``), each scored by the mean of its
    pairs, because a split of 6 clips with 4 frames each is 24 pairs but only 6 clips.
    """
    y = scores.labels
    probs = _ablation_scores(scores, temperature)
    headline = M.compute_metrics(y, probs["detector"], threshold)
    ablation = []
    for name, description in ABLATIONS.items():
        s = probs[name]
        m = M.compute_metrics(y, s, 0.5 if name != "detector" else threshold)
        ablation.append(
            {
                "name": name,
                "description": description,
                "roc_auc": m["roc_auc"],
                "average_precision": m["average_precision"],
                "eer": m["eer"],
                "accuracy": m["accuracy"],
            }
        )
    auc = headline["roc_auc"]
    importance = {
        "face (blanked)": auc - M.roc_auc(y, probs["face blanked"]),
        "voice (blanked)": auc - M.roc_auc(y, probs["voice blanked"]),
        **{name: auc - M.roc_auc(y, scores.variants[name]) for name in PERMUTATIONS},
    }
    if len(set(y.tolist())) < 2:
        importance = {k: math.nan for k in importance}
    raw = sigmoid(scores.logits)
    clips, clip_y, clip_p = clip_scores(scores.image_keys, y, probs["detector"])
    return {
        "n": len(scores),
        "pairs": len(scores),
        "clips": len(clips),
        "clip_metrics": M.compute_metrics(clip_y, clip_p, threshold),
        "skipped": len(scores.skipped),
        "temperature": float(temperature),
        "threshold": float(threshold),
        "metrics": headline,
        "ablation": ablation,
        "unimodal": {
            "image": M.roc_auc(y, probs["image head"]),
            "audio": M.roc_auc(y, probs["audio head"]),
        },
        "feature_importance": importance,
        "emotion_accuracy": {
            "face": _emotion_accuracy(scores.face_emotion_true, scores.face_emotion_pred),
            "voice": _emotion_accuracy(scores.voice_emotion_true, scores.voice_emotion_pred),
        },
        "calibration": {
            "ece_uncalibrated": expected_calibration_error(raw, y),
            "ece_calibrated": expected_calibration_error(probs["detector"], y),
        },
        "abstention": [
            vars(row) for row in abstention_table(probs["detector"], y, abstain_bounds, threshold)
        ],
        "domain": domain_summary(scores),
    }


def domain_summary(scores: SplitScores) -> dict[str, Any]:
    """Share of the split's samples the detector's unfamiliar-input guard calls familiar.

    ``{"image": {"limit", "familiar_share"}, "audio": {...}, "both": share}``; a model without
    a guard gives ``{"guard": false}``, since nothing can be said about familiarity.
    """
    if not scores.domain_limits:
        return {"guard": False}
    result: dict[str, Any] = {"guard": True}
    familiar = np.ones(len(scores), dtype=bool)
    for modality, limit in scores.domain_limits.items():
        within = scores.domain_distances[modality] <= limit
        familiar &= within
        result[modality] = {"limit": limit, "familiar_share": float(within.mean())}
    result["both"] = float(familiar.mean())
    return result


def _modality_auc(labels: Sequence[bool | None], probs: np.ndarray, column: str) -> dict[str, Any]:
    """ROC-AUC of one head's probabilities against a per-modality label (given rows only)."""
    given = np.array([v is not None for v in labels], dtype=bool)
    y = np.array([bool(v) for v in labels], dtype=np.int64)[given]
    row: dict[str, Any] = {
        "label": column,
        "n": int(given.sum()),
        "n_fake": int(y.sum()),
        "roc_auc": M.roc_auc(y, probs[given]),
    }
    if math.isnan(row["roc_auc"]):
        row["note"] = f"{column} takes one value here: ROC-AUC undefined"
    return row


def category_summary(
    scores: SplitScores,
    clip_labels: Mapping[str, ClipLabel],
    *,
    temperature: float = 1.0,
    threshold: float = 0.5,
) -> dict[str, Any]:
    """Metrics per category of labels/clips.csv, and of each head against its modality's label.

    A pair belongs to the clip of its face file (:func:`~mmdeepfake.data.layout.clip_id`).
    Categories usually hold one class (FakeAVCeleb's ``A`` is real, ``B``-``D`` fake), so a
    category is ranked against the split's pairs of the class it lacks, as the datasets' own
    papers report it: a category of fakes against every real pair, a category of reals
    against every fake pair; a category holding both classes is scored on its own.

    ``by_category[c]``: ``n``, ``clips``, ``n_real``, ``n_fake`` count the category's own
    pairs; ``accuracy`` (at ``threshold``) is over them; ``roc_auc`` and ``eer`` over the
    ranked set (``ranked_against`` says which); ``image_head_auc`` (the image head against
    ``visual_fake``) and ``audio_head_auc`` (the audio head against ``audio_fake``) over the
    same set, where the column is given. Undefined values are NaN with a ``note``.
    ``by_modality`` scores each head over every listed pair; ``unlisted_pairs`` counts pairs
    whose clip has no row (left out of both).
    """
    probs = _ablation_scores(scores, temperature)
    rows = [clip_labels.get(clip_id(key)) for key in scores.image_keys]
    listed = np.array([r is not None for r in rows], dtype=bool)
    known = [r for r in rows if r is not None]
    heads = {m: probs[f"{m} head"][listed] for m in MODALITY_LABELS}
    labels = {m: [getattr(r, col) for r in known] for m, col in MODALITY_LABELS.items()}
    y, detector = scores.labels[listed], probs["detector"][listed]
    category = np.array([r.category for r in known], dtype=object)
    by_category: dict[str, Any] = {}
    for name in sorted(set(category.tolist())):
        inside = category == name
        own = M.compute_metrics(y[inside], detector[inside], threshold)
        ranked, against = inside, "itself"
        if own["n_real"] == 0 or own["n_fake"] == 0:
            missing = 0 if own["n_real"] == 0 else 1
            ranked = inside | (y == missing)
            against = f"all {LABEL_NAMES[missing]} pairs of the split"
        eer, _ = M.equal_error_rate(y[ranked], detector[ranked])
        row: dict[str, Any] = {
            "n": own["n"],
            "clips": len({r.clip_id for r, keep in zip(known, inside) if keep}),
            "n_real": own["n_real"],
            "n_fake": own["n_fake"],
            "accuracy": own["accuracy"],
            "roc_auc": M.roc_auc(y[ranked], detector[ranked]),
            "eer": eer,
            "ranked_against": against,
        }
        notes = []
        if math.isnan(row["roc_auc"]):
            notes.append("the split has no pair of the other class: ROC-AUC and EER undefined")
        for modality, column in MODALITY_LABELS.items():
            values = [v for v, keep in zip(labels[modality], ranked) if keep]
            if any(v is not None for v in values):
                head = _modality_auc(values, heads[modality][ranked], column)
                row[f"{modality}_head_auc"] = head["roc_auc"]
                notes += [head["note"]] if "note" in head else []
        if notes:
            row["note"] = "; ".join(notes)
        by_category[name] = row
    by_modality = {
        modality: _modality_auc(labels[modality], heads[modality], column)
        for modality, column in MODALITY_LABELS.items()
        if any(v is not None for v in labels[modality])
    }
    return {
        "by_category": by_category,
        "by_modality": by_modality,
        "unlisted_pairs": int((~listed).sum()),
    }


def silence_audit(
    scores: SplitScores, trimmed: SplitScores, *, temperature: float = 1.0
) -> dict[str, Any]:
    """The detector's ROC-AUC over pairs with and without the recordings' silence at the ends.

    ``drop`` is ``auc - auc_trimmed``: a large drop means the scores lean on leading or
    trailing silence, which tells the fakes of some datasets from their real clips by itself.
    The audio head's AUC before and after is given too: its voice path can lean on silence
    while the fused score, weighing the face more, barely moves. Frames in ``frames/`` carry
    no timestamps, so every frame is kept and only audio changes.
    """
    auc = M.roc_auc(scores.labels, sigmoid(scores.logits / temperature))
    auc_trimmed = M.roc_auc(trimmed.labels, sigmoid(trimmed.logits / temperature))
    return {
        "auc": auc,
        "auc_trimmed": auc_trimmed,
        "drop": auc - auc_trimmed,
        "audio_head_auc": M.roc_auc(scores.labels, scores.variants["audio head"]),
        "audio_head_auc_trimmed": M.roc_auc(trimmed.labels, trimmed.variants["audio head"]),
        "pairs": len(scores),
        "pairs_trimmed": len(trimmed),
        "threshold_db": SILENCE_THRESHOLD_DB,
        "min_seconds": SILENCE_MIN_SECONDS,
        "frames": "kept: frames/ files carry no timestamps, so only the audio was trimmed",
    }


def metrics_rows(summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The summary flattened to ``section, name, metric, value`` rows (for metrics.csv)."""
    rows: list[dict[str, Any]] = []
    for section, m in (
        ("detector", summary["metrics"]),
        ("detector_clips", summary["clip_metrics"]),
    ):
        for key, value in m.items():
            if key == "confusion_matrix":
                (tn, fp), (fn, tp) = value
                rows += [
                    {"section": section, "name": "detector", "metric": k, "value": v}
                    for k, v in (("tn", tn), ("fp", fp), ("fn", fn), ("tp", tp))
                ]
            elif key != "note":
                rows.append({"section": section, "name": "detector", "metric": key, "value": value})
    for row in summary["ablation"]:
        for key in ("roc_auc", "average_precision", "eer", "accuracy"):
            rows.append(
                {"section": "ablation", "name": row["name"], "metric": key, "value": row[key]}
            )
    for name, value in summary["feature_importance"].items():
        rows.append(
            {"section": "feature_importance", "name": name, "metric": "auc_drop", "value": value}
        )
    for who, acc in summary["emotion_accuracy"].items():
        for key, value in acc.items():
            rows.append({"section": "emotion", "name": who, "metric": key, "value": value})
    for key, value in summary["calibration"].items():
        rows.append({"section": "calibration", "name": "detector", "metric": key, "value": value})
    rows.append(
        {
            "section": "calibration",
            "name": "detector",
            "metric": "temperature",
            "value": summary["temperature"],
        }
    )
    domain = summary.get("domain") or {}
    for name in ("image", "audio"):
        if name in domain:
            rows.append(
                {
                    "section": "domain",
                    "name": name,
                    "metric": "familiar_share",
                    "value": domain[name]["familiar_share"],
                }
            )
    for row in summary["abstention"]:
        for key in ("coverage", "accuracy", "kept", "abstained"):
            rows.append(
                {
                    "section": "abstention",
                    "name": f"confidence >= {row['bound']:g}",
                    "metric": key,
                    "value": row[key],
                }
            )
    for category, row in summary.get("by_category", {}).items():
        rows += [
            {"section": "by_category", "name": category, "metric": key, "value": value}
            for key, value in row.items()
            if key not in ("note", "ranked_against")
        ]
    for modality, row in summary.get("by_modality", {}).items():
        rows += [
            {"section": "by_modality", "name": modality, "metric": key, "value": row[key]}
            for key in ("n", "n_fake", "roc_auc")
        ]
    for audit, row in summary.get("audit", {}).items():
        rows += [
            {"section": "audit", "name": audit, "metric": key, "value": row[key]}
            for key in ("auc", "auc_trimmed", "drop", "audio_head_auc", "audio_head_auc_trimmed")
        ]
    return rows


def json_safe(value: Any) -> Any:
    """NaN/inf -> None so metrics.json is strict JSON (readable by any JSON parser)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        return json_safe(value.item())
    return value


def csv_text(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(
        buf, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n"
    )
    writer.writeheader()
    for row in rows:
        writer.writerow(
            {
                k: (
                    ""
                    if row.get(k) is None or (isinstance(row.get(k), float) and math.isnan(row[k]))
                    else row.get(k)
                )
                for k in columns
            }
        )
    return buf.getvalue()


# --- writing -----------------------------------------------------------------------------------


def _prediction_rows(scores: SplitScores, temperature: float) -> list[dict[str, Any]]:
    probs = sigmoid(scores.logits / temperature)
    image = sigmoid(scores.variants["image head"])
    audio = sigmoid(scores.variants["audio head"])
    return [
        {
            "image_key": scores.image_keys[i],
            "audio_key": scores.audio_keys[i],
            "label": int(scores.labels[i]),
            "fake_probability": round(float(probs[i]), 6),
            "image_head_probability": round(float(image[i]), 6),
            "audio_head_probability": round(float(audio[i]), 6),
            "consistency": round(float(scores.consistency[i]), 6),
            "face_emotion_true": int(scores.face_emotion_true[i]),
            "face_emotion_pred": int(scores.face_emotion_pred[i]),
            "voice_emotion_true": int(scores.voice_emotion_true[i]),
            "voice_emotion_pred": int(scores.voice_emotion_pred[i]),
        }
        for i in range(len(scores))
    ]


def write_outputs(
    out: Storage,
    scores: SplitScores,
    summary: Mapping[str, Any],
    *,
    title: str,
    facts: Mapping[str, Any],
) -> list[str]:
    """metrics.json, metrics.csv, predictions.csv, plots/*.png and index.html; returns keys."""
    y = scores.labels
    t, threshold = summary["temperature"], summary["threshold"]
    calibrated = sigmoid(scores.logits / t)
    heads = {
        "image head": sigmoid(scores.variants["image head"]),
        "audio head": sigmoid(scores.variants["audio head"]),
    }
    both_classes = len(set(y.tolist())) == 2
    makers = {
        "confusion_matrix": lambda: plots.plot_confusion_matrix(
            y, (calibrated >= threshold).astype(int)
        ),
        "roc_curve": lambda: plots.plot_roc_curve(y, calibrated, heads),
        "precision_recall_curve": lambda: plots.plot_precision_recall_curve(y, calibrated, heads),
        "f1_vs_threshold": lambda: plots.plot_f1_vs_threshold(y, calibrated),
        "sensitivity_specificity": lambda: plots.plot_sensitivity_specificity(y, calibrated),
        "prediction_distribution": lambda: plots.plot_prediction_distribution(
            y, calibrated, threshold
        ),
        "precision_recall_threshold": lambda: plots.plot_precision_recall_threshold(y, calibrated),
        "feature_importance": lambda: plots.plot_feature_importance(summary["feature_importance"]),
        "reliability_diagram": lambda: plots.plot_reliability_diagram(
            sigmoid(scores.logits), calibrated, y
        ),
    }
    if not both_classes:  # curves and importances are undefined with one class
        makers = {
            k: v
            for k, v in makers.items()
            if k in ("confusion_matrix", "prediction_distribution", "reliability_diagram")
        }
    written = []
    figure_paths = []
    for name in EVALUATION_PLOTS:
        if name not in makers:
            continue
        key = f"plots/{plots.PLOT_FILENAMES[name]}"
        out.write_bytes(key, plots.figure_to_png(makers[name]()))
        written.append(key)
        figure_paths.append(key)

    safe = json_safe({**facts, **summary})
    out.write_text("metrics.json", json.dumps(safe, indent=2) + "\n")
    out.write_text(
        "metrics.csv", csv_text(metrics_rows(summary), ("section", "name", "metric", "value"))
    )
    out.write_text("predictions.csv", csv_text(_prediction_rows(scores, t), PREDICTION_COLUMNS))
    written += ["metrics.json", "metrics.csv", "predictions.csv"]

    m = summary["metrics"]
    clip_m = summary["clip_metrics"]
    counted = [
        {
            "unit": "pairs (face frame + voice)",
            "n": m["n"],
            "real": m["n_real"],
            "fake": m["n_fake"],
        },
        {"unit": "clips", "n": clip_m["n"], "real": clip_m["n_real"], "fake": clip_m["n_fake"]},
    ]
    headline = [
        {"metric": k, "pairs": m[k], "clips (mean over a clip's pairs)": clip_m[k]}
        for k in (
            "accuracy",
            "precision",
            "recall",
            "specificity",
            "f1",
            "roc_auc",
            "average_precision",
            "eer",
            "eer_threshold",
            "best_f1_threshold",
            "best_f1",
        )
    ]
    headline.append(
        {
            "metric": "confusion [[TN, FP], [FN, TP]]",
            "pairs": str(m["confusion_matrix"]),
            "clips (mean over a clip's pairs)": str(clip_m["confusion_matrix"]),
        }
    )
    emotion = [{"modality": k, **v} for k, v in summary["emotion_accuracy"].items()]
    calibration = [{"temperature": t, **summary["calibration"]}]
    notes = [m["note"]] if "note" in m else []
    if scores.skipped:
        notes.append(
            f"{len(scores.skipped)} sample(s) could not be read and were skipped "
            f"(first: {scores.skipped[0][0]}: {scores.skipped[0][1]})"
        )
    if summary.get("unlisted_pairs"):
        notes.append(
            f"{summary['unlisted_pairs']} pair(s) belong to clips without a row in "
            "labels/clips.csv and are left out of the per-category tables"
        )
    page = build_report(
        title,
        summary=facts,
        tables={
            "What was scored": counted,
            f"Detector metrics (threshold {threshold:g}, temperature {t:.3f})": headline,
            "Ablation and single-modality baselines": [
                {
                    k: r[k]
                    for k in (
                        "name",
                        "roc_auc",
                        "average_precision",
                        "eer",
                        "accuracy",
                        "description",
                    )
                }
                for r in summary["ablation"]
            ],
            "Feature importance (drop in ROC-AUC)": [
                {"input": k, "auc_drop": v} for k, v in summary["feature_importance"].items()
            ],
            "Calibration": calibration,
            "Abstention (answer only when confidence >= bound)": summary["abstention"],
            "Emotion accuracy (where labels exist)": emotion,
            **_label_tables(summary),
        },
        figures=figure_paths,
        curves=(y, calibrated, heads) if both_classes else None,
        notes=notes,
    )
    out.write_text("index.html", page)
    written.append("index.html")
    return written


def _label_tables(summary: Mapping[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """The report's per-category, per-modality and audit tables (where they were computed)."""
    tables: dict[str, list[dict[str, Any]]] = {}
    if "by_category" in summary:
        columns = [
            *("n", "clips", "n_real", "n_fake", "accuracy", "roc_auc", "eer"),
            *("ranked_against", "image_head_auc", "audio_head_auc", "note"),
        ]
        tables["By category (labels/clips.csv; image head vs visual_fake, audio vs audio_fake)"] = [
            {"category": name, **{k: row.get(k) for k in columns}}
            for name, row in summary["by_category"].items()
        ]
    if summary.get("by_modality"):
        tables["Each head against its own modality's label, all categories"] = [
            {"head": modality, **row} for modality, row in summary["by_modality"].items()
        ]
    if "silence" in summary.get("audit", {}):
        row = summary["audit"]["silence"]
        tables["Shortcut audit: leading and trailing silence trimmed (drop = AUC lost)"] = [
            {
                **{k: row[k] for k in ("auc", "auc_trimmed", "drop")},
                **{k: row[k] for k in ("audio_head_auc", "audio_head_auc_trimmed", "pairs")},
                "silence": f"frames {row['threshold_db']:g} dB under the loudest, "
                f"at least {row['min_seconds']:g} s kept",
                "frames": row["frames"],
            }
        ]
    return tables


# --- the whole evaluation ----------------------------------------------------------------------


@dataclass
class EvaluationResult:
    """What :func:`evaluate` produced: the summary (as in metrics.json) and where it went."""

    summary: dict[str, Any]
    output_uri: str | None
    files: list[str] = field(default_factory=list)
    scores: SplitScores | None = None


def default_output(bucket: str | None, split: str) -> str:
    """``s3://BUCKET/outputs/evaluations/<stamp>-<split>`` or ``outputs/evaluations/...``."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    return f"{output_root(None, bucket)}/evaluations/{stamp}-{split}"


def evaluate(
    model: str | Detector,
    *,
    bucket: str | None = None,
    prefix: str = "dataset/",
    endpoint_url: str | None = None,
    data_dir: str | None = None,
    split: str = "test",
    output: str | None = None,
    write: bool = True,
    abstain_bounds: Sequence[float] = DEFAULT_ABSTAIN_BOUNDS,
    batch_size: int = 16,
    seed: int = 0,
    num_workers: int = 0,
    prefetch: int = 8,
    progress: bool = False,
    audit: Sequence[str] = (),
) -> EvaluationResult:
    """Evaluate a detector (object, folder, hub id, S3 folder or ``starter``) on one split.

    Writes to ``output`` (a folder or ``s3://`` URI; default :func:`default_output`) unless
    ``write`` is False. The detector's own threshold and temperature are used. Where the
    dataset has a labels/clips.csv with categories, the summary gains ``by_category`` and
    ``by_modality`` (:func:`category_summary`). ``audit`` names shortcut audits from
    ``AUDITS``; ``"silence"`` scores the split again with the silence at both ends of every
    recording trimmed and adds ``audit.silence`` (:func:`silence_audit`).
    """
    unknown = [name for name in audit if name not in AUDITS]
    if unknown:
        raise ConfigError(f"unknown audit {', '.join(unknown)}; choose from {', '.join(AUDITS)}")
    storage, index = open_dataset(
        bucket=bucket, prefix=prefix, endpoint_url=endpoint_url, data_dir=data_dir
    )
    detector = load_detector(model, endpoint_url=endpoint_url) if isinstance(model, str) else model
    if split not in index.splits():
        raise DatasetError(
            f"the dataset at {storage.uri(index.prefix)} has no {split!r} split "
            f"(found: {', '.join(index.splits())}); pass --split"
        )
    scores = score_split(
        detector,
        storage,
        index,
        split,
        batch_size=batch_size,
        seed=seed,
        num_workers=num_workers,
        prefetch=prefetch,
        progress=progress,
    )
    for key, reason in scores.skipped:
        log.warning("skipped a bad sample: %s (%s)", key, reason)
    summary = summarise(
        scores,
        temperature=detector.temperature,
        threshold=detector.threshold,
        abstain_bounds=abstain_bounds,
    )
    clip_labels = read_clip_labels(storage, index)
    if clip_labels is not None:
        summary.update(
            category_summary(
                scores,
                clip_labels,
                temperature=detector.temperature,
                threshold=detector.threshold,
            )
        )
    if "silence" in audit:
        trimmed = score_split(
            detector,
            storage,
            index,
            split,
            batch_size=batch_size,
            seed=seed,
            num_workers=num_workers,
            prefetch=prefetch,
            progress=progress,
            trim_silence=True,
        )
        summary["audit"] = {
            "silence": silence_audit(scores, trimmed, temperature=detector.temperature)
        }
    facts = {
        "model": getattr(detector, "name", "detector"),
        "fusion": detector.fusion_name,
        "data": storage.uri(index.prefix),
        "split": split,
    }
    if not write:
        return EvaluationResult(summary={**facts, **summary}, output_uri=None, scores=scores)
    target = output or default_output(bucket, split)
    out = open_storage(target, endpoint_url=endpoint_url)
    out.ensure_bucket()
    files = write_outputs(
        out, scores, summary, title=f"mmdeepfake evaluation: {split} split", facts=facts
    )
    log.info("evaluation written to %s", out.uri())
    return EvaluationResult(
        summary={**facts, **summary}, output_uri=out.uri(), files=files, scores=scores
    )
