"""Default weights of the detection loss's terms, and its consistency margin.

:class:`mmdeepfake.losses.DetectionLoss` and the training configuration both default to these,
so a run and a loss built by hand weigh the terms alike. They live apart from the loss so that
reading a configuration (or ``mmdeepfake-train --help``) does not import torch.
"""

from __future__ import annotations

EMOTION_WEIGHT = 1.0
CONSISTENCY_WEIGHT = 0.5
MARGIN = 0.5
AUXILIARY_WEIGHT = 0.25
