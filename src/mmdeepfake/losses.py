"""Training objective: real/fake detection, emotion recognition and emotional consistency.

total = detection + auxiliary_weight * auxiliary + emotion_weight * emotion
        + consistency_weight * consistency
  detection   = BCE(fake_logit, y)                      y = 1 for fake, 0 for real
  auxiliary   = mean over modalities m of BCE(modality_logits[m], y_m)
                y_m = the modality's own label (image: visual_fake, audio: audio_fake) where
                known (>= 0), y elsewhere
  emotion     = mean cross-entropy over every known (>= 0) face and voice emotion label
  consistency = mean over the batch of  d_i if real,  relu(margin - d_i) if fake,
                where d = JSD(p_face, p_voice) / ln 2 in [0, 1]
The consistency term pulls the two emotion distributions together on real pairs and pushes
them at least ``margin`` apart on fakes, so the emotion heads learn the cue the fusion uses.
With per-modality labels the image and audio heads answer "is the face / the voice fake?"
rather than "is the clip fake?" (a real face dubbed with a cloned voice is a fake clip with a
real face), so ``Prediction.modality_scores`` says which modality was manipulated.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mmdeepfake.loss_weights import AUXILIARY_WEIGHT, CONSISTENCY_WEIGHT, EMOTION_WEIGHT, MARGIN
from mmdeepfake.model import ModelOutput


class DetectionLoss(nn.Module):
    """Callable as ``loss(output, labels, face_emotions=None, voice_emotions=None,
    image_labels=None, audio_labels=None)``.

    labels: (B,) 0 real / 1 fake. face_emotions / voice_emotions: (B,) EMOTIONS indices,
    -1 where unknown (ignored). image_labels / audio_labels: (B,) targets of the image and
    audio heads, 0 / 1, -1 where unknown (that head learns ``labels``); None: all unknown.
    Returns a dict of scalar tensors: total, detection, auxiliary, emotion, consistency (every
    part is returned unweighted; ``total`` applies the weights).
    """

    def __init__(
        self,
        emotion_weight: float = EMOTION_WEIGHT,
        consistency_weight: float = CONSISTENCY_WEIGHT,
        margin: float = MARGIN,
        auxiliary_weight: float = AUXILIARY_WEIGHT,
    ) -> None:
        super().__init__()
        self.emotion_weight = emotion_weight
        self.consistency_weight = consistency_weight
        self.margin = margin
        self.auxiliary_weight = auxiliary_weight

    def forward(
        self,
        output: ModelOutput,
        labels: torch.Tensor,
        face_emotions: torch.Tensor | None = None,
        voice_emotions: torch.Tensor | None = None,
        image_labels: torch.Tensor | None = None,
        audio_labels: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        target = labels.to(output.fake_logit.dtype)
        detection = F.binary_cross_entropy_with_logits(output.fake_logit, target)
        zero = output.fake_logit.sum() * 0.0
        own_labels = {"image": image_labels, "audio": audio_labels}
        if output.modality_logits:
            auxiliary = torch.stack(
                [
                    F.binary_cross_entropy_with_logits(
                        logits, _modality_target(target, own_labels.get(name))
                    )
                    for name, logits in output.modality_logits.items()
                ]
            ).mean()
        else:
            auxiliary = zero
        emotion = self._emotion(output, face_emotions, voice_emotions, zero)
        divergence = 1.0 - output.consistency
        fake = target > 0.5
        consistency = torch.where(fake, F.relu(self.margin - divergence), divergence).mean()
        total = (
            detection
            + self.auxiliary_weight * auxiliary
            + self.emotion_weight * emotion
            + self.consistency_weight * consistency
        )
        return {
            "total": total,
            "detection": detection,
            "auxiliary": auxiliary,
            "emotion": emotion,
            "consistency": consistency,
        }

    @staticmethod
    def _emotion(
        output: ModelOutput,
        face: torch.Tensor | None,
        voice: torch.Tensor | None,
        zero: torch.Tensor,
    ) -> torch.Tensor:
        """Cross-entropy averaged over all known labels of both modalities (0 if none known)."""
        losses = []
        for logits, labels in (
            (output.face_emotion_logits, face),
            (output.voice_emotion_logits, voice),
        ):
            if labels is None:
                continue
            known = labels >= 0
            if known.any():
                losses.append(
                    F.cross_entropy(logits[known], labels[known].long(), reduction="none")
                )
        if not losses:
            return zero
        return torch.cat(losses).mean()


def _modality_target(clip: torch.Tensor, own: torch.Tensor | None) -> torch.Tensor:
    """A head's target: its modality's own label where known (>= 0), the clip's elsewhere."""
    if own is None:
        return clip
    return torch.where(own >= 0, own.to(clip.dtype), clip)
