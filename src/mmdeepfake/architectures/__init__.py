"""Named detector architectures, kept as data files beside this module.

Each ``NAME.json`` is the architecture part of a ``config.json`` (encoders, fusion, their
options, embedding width, dropout), so a shape is defined once and used everywhere: the
training presets (``model: tiny``), the test suite, the starter build and the docs' size table.

- ``tiny``: the narrowest real encoders, for tests and smoke runs on a laptop CPU;
- ``starter``: the shape of the bundled starter model (``Detector.starter()``);
- ``base``: the full-size detector (a ResNet-18 face encoder, the default CNN+BiLSTM voice
  encoder), what ``Detector()`` builds.

Add a shape by dropping a JSON file here; ``list_architectures()`` finds it.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from mmdeepfake.config import DetectorConfig
from mmdeepfake.errors import ConfigError

#: Architecture fields a training run takes from its own settings (TrainConfig.fusion,
#: .dropout), so they are not part of :func:`model_options`.
_RUN_FIELDS = ("fusion", "fusion_kwargs", "dropout")


def list_architectures() -> tuple[str, ...]:
    """The names of the architectures shipped with mmdeepfake, sorted."""
    folder = resources.files(__name__)
    return tuple(
        sorted(
            entry.name[: -len(".json")]
            for entry in folder.iterdir()
            if entry.name.endswith(".json")
        )
    )


def architecture_config(name: str) -> DetectorConfig:
    """The config of architecture ``name`` (default preprocessing and calibration).

    Raises:
        ConfigError: no architecture of that name.
    """
    known = list_architectures()
    if name not in known:
        raise ConfigError(f"unknown architecture {name!r}; choose one of {', '.join(known)}")
    text = resources.files(__name__).joinpath(f"{name}.json").read_text(encoding="utf-8")
    return DetectorConfig.from_dict(json.loads(text))


def model_options(name: str) -> dict[str, Any]:
    """Architecture ``name`` as ``Detector`` keyword arguments without the fusion and dropout
    (a training run's ``model`` setting; ``TrainConfig.fusion`` and ``.dropout`` pick those)."""
    options = architecture_config(name).architecture()
    for key in _RUN_FIELDS:
        del options[key]
    return options
