"""mmdeepfake: audio-visual deepfake detection from the emotional consistency of face and voice.

Only the public API lives here. Heavy modules (torch, PyAV, boto3) load on first use, so
``import mmdeepfake`` stays fast enough for command-line tools and web apps.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from mmdeepfake.labels import EMOTIONS

__version__ = "0.1.0"

_LAZY = {
    "Detector": "mmdeepfake.detector",
    "Prediction": "mmdeepfake.prediction",
    "Segment": "mmdeepfake.prediction",
    "Face": "mmdeepfake.prediction",
    "ENCODERS": "mmdeepfake.encoders",
    "FUSIONS": "mmdeepfake.fusion",
    "MmDeepfakeError": "mmdeepfake.errors",
    "load_detector": "mmdeepfake.loading",
}

__all__ = [
    "EMOTIONS",
    "ENCODERS",
    "FUSIONS",
    "Detector",
    "Face",
    "MmDeepfakeError",
    "Prediction",
    "Segment",
    "__version__",
    "load_detector",
]

if TYPE_CHECKING:
    from mmdeepfake.detector import Detector
    from mmdeepfake.encoders import ENCODERS
    from mmdeepfake.errors import MmDeepfakeError
    from mmdeepfake.fusion import FUSIONS
    from mmdeepfake.loading import load_detector
    from mmdeepfake.prediction import Face, Prediction, Segment


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mmdeepfake' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
