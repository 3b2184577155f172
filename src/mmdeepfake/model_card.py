"""The model card of a saved detector: a Hugging Face README generated from its config.json.

The card is built from the saved configuration (architecture, fusion, calibration, the
unfamiliar-input guard) and the training metadata stored in it (data, validation metrics), so a
card can never disagree with the weights it describes. Saving a detector writes one, and a push
to the Hub uploads it.
"""

from __future__ import annotations

import json
from typing import Any

from mmdeepfake.labels import EMOTIONS


def build_model_card(
    config: dict[str, Any], *, repo_id: str | None = None, load: str | None = None
) -> str:
    """A Hugging Face model card (README.md with YAML front matter) for a saved Detector.

    ``load`` is the Python expression the card shows for loading the model (default:
    ``Detector.from_pretrained`` of ``repo_id``).
    """
    meta = config.get("metadata") or {}
    metrics = meta.get("val_metrics") or {}
    calibration = meta.get("calibration") or {}
    training = meta.get("training") or {}
    name = repo_id or f"mmdeepfake detector ({config.get('fusion')} fusion)"

    def fmt(value: Any) -> str:
        return f"{value:.4f}" if isinstance(value, float) else str(value)

    metric_rows = (
        "\n".join(f"| {k} | {fmt(v)} |" for k, v in metrics.items()) or "| (none recorded) | |"
    )
    cal = (
        f"Temperature scaling fitted on the validation split: T = "
        f"{fmt(calibration.get('temperature'))}, expected calibration error "
        f"{fmt(calibration.get('ece_before'))} before and {fmt(calibration.get('ece_after'))}"
        " after."
        if calibration
        else "Not calibrated (temperature 1.0)."
    )
    training_lines = "\n".join(f"- {k}: {v}" for k, v in training.items())
    emotions = ", ".join(EMOTIONS)
    return f"""---
library_name: mmdeepfake
license: apache-2.0
pipeline_tag: video-classification
tags:
- deepfake-detection
- audio-visual
- emotion
---

# {name}

An audio-visual deepfake detector built with [mmdeepfake](https://github.com/mmdeepfake/mmdeepfake).
It reads the emotion shown by the face and the emotion carried by the voice and scores whether
they agree; manipulating one modality tends to break that agreement.

## Architecture

- Face encoder: {_part(config, "image_encoder")}
  over 224x224 face crops, with an emotion head over {len(EMOTIONS)} emotions ({emotions}).
- Voice encoder: {_part(config, "audio_encoder")}
  over 128x128 log-mel spectrograms of 16 kHz audio windows, with the same emotion head.
- Fusion: `{config.get("fusion")}` {json.dumps(config.get("fusion_kwargs") or {})}; embedding
  width {config.get("embed_dim")}, dropout {config.get("dropout")}.
- Decision threshold {config.get("threshold")}; {cal}

## Data

Trained on: {meta.get("trained_on", "not recorded")} (run `{meta.get("run_id", "?")}`, best
epoch {meta.get("epoch", "?")}). Training settings:
{training_lines or "- not recorded"}

{guard_section(config)}
## Validation metrics

| metric | value |
|---|---|
{metric_rows}

## Use

```python
from mmdeepfake import Detector
detector = {load or f'Detector.from_pretrained("{repo_id or "PATH_OR_REPO_ID"}")'}
print(detector.predict("clip.mp4").to_dict())
```

Intended use: research on audio-visual manipulation detection, triage of media for human
review, and teaching. The verdict comes with the evidence behind it (face and voice emotions,
their consistency, per-modality scores) so a person can check it.

## Limits

- The metrics above are on the validation split of the training data only; they say little
  about other sources, languages, recording conditions or manipulation methods.
- Models trained on synthetic data (`mmdeepfake-synth`) learn the synthetic cue, not real
  deepfakes; do not use them to judge real media.
- The cue is emotional consistency: fakes that keep face and voice emotions consistent, or real
  clips where they legitimately differ (irony, acting, masking), can be misjudged.
- Not for automated decisions about people without human review.
"""


GUARD_HEADING = "## Unfamiliar input"
_GUARD_TABLE_HEADER = (
    "| modality | limit | familiar share, train | familiar share, validation "
    "| one-modality head ROC-AUC (validation) |"
)


def _part(config: dict[str, Any], name: str) -> str:
    """An encoder of the card: its registry name and keyword arguments."""
    return f"`{config.get(name)}` {json.dumps(config.get(f'{name}_kwargs') or {})}"


def guard_section(config: dict[str, Any]) -> str:
    """The card section on the unfamiliar-input guard and the one-modality heads."""
    meta = config.get("metadata") or {}
    guard = meta.get("domain_guard")
    if not guard:
        return (
            f"{GUARD_HEADING}\n\nThis model has no unfamiliar-input guard: it cannot tell "
            "when an input is unlike its training data. Fit one with "
            "`scripts/fit_domain_guard.py`.\n"
        )
    rows = []
    heads = meta.get("modality_calibration") or {}
    for modality in ("image", "audio"):
        g = guard.get(modality) or {}
        h = heads.get(modality) or {}
        auc = h.get("val_auc")
        rows.append(
            f"| {modality} | {g.get('limit', float('nan')):.2f} | "
            f"{g.get('familiar_share_train', float('nan')):.3f} | "
            f"{g.get('familiar_share_validation', float('nan')):.3f} | "
            f"{'n/a' if auc is None else f'{auc:.3f}'} |"
        )
    return f"""{GUARD_HEADING}

Each prediction says, per modality, whether the input is like the training data
(`Prediction.domain`); by default an unfamiliar modality makes the label `uncertain`.
Method: {guard.get("method")} ({guard.get("quantile")}); fitted on
{guard.get("fitted_on", "the training split")}.

{_GUARD_TABLE_HEADER}
|---|---|---|---|---|
{chr(10).join(rows)}

A one-modality head with a validation ROC-AUC near 0.5 gives verdicts that are not informative
when the other modality is missing; predictions say so in their warnings.
"""


def with_guard_section(card: str, config: dict[str, Any]) -> str:
    """``card`` with its unfamiliar-input section replaced by one describing ``config``'s guard
    (inserted before "## Validation metrics", or appended, when the card has none)."""
    section = guard_section(config)
    start = card.find(GUARD_HEADING)
    if start >= 0:
        end = card.find("\n## ", start + len(GUARD_HEADING))
        return card[:start] + section + (card[end + 1 :] if end >= 0 else "")
    anchor = card.find("## Validation metrics")
    if anchor >= 0:
        return card[:anchor] + section + "\n" + card[anchor:]
    return card.rstrip("\n") + "\n\n" + section
