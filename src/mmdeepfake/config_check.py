"""Check a detector configuration before anything is built from it.

A ``config.json`` is two kilobytes of text that decides how much memory a model takes: a
ResNet width of 100 000 asks for terabytes. A config read from a folder or the hub is therefore
checked in three steps, cheapest first, before the real model is built:

1. types and ranges of every field (:func:`check_config`), with bounds far above any model
   that makes sense here (a ResNet-18 has width 64; the bounds allow 512);
2. the parameters it implies, counted on PyTorch's ``meta`` device, which records shapes and
   allocates nothing (:func:`implied_shapes`), against :data:`MAX_PARAMETERS`;
3. those shapes against the tensor shapes in the ``model.safetensors`` header, which is read
   alone, without the weights (:func:`check_weights_match`).

A config may also name a Hugging Face model for an ``hf_image`` / ``hf_audio`` encoder. Such a
name is followed only when it is a hub id: a local folder named inside a config (``../x``, or a
hub-id-shaped name that exists as a folder here) is refused unless the caller passes it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
import os
import re
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

from mmdeepfake.errors import CheckpointError, ConfigError

MIN_NUM_FRAMES = 1
MAX_NUM_FRAMES = 256
MAX_PARAMETERS = 500_000_000  # 2 GB of float32; the ResNet-18 detector has about 13 million
MAX_CONFIG_BYTES = 1 << 20
MAX_HEADER_BYTES = 16 << 20

# A hub id: "name" or "owner/name", letters, digits, '-', '_', '.'; no "..", no leading '.'.
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}(/[A-Za-z0-9][\w.-]{0,95})?$")

_DETECTOR_FIELDS = {
    "image_encoder",
    "audio_encoder",
    "fusion",
    "image_encoder_kwargs",
    "audio_encoder_kwargs",
    "fusion_kwargs",
    "embed_dim",
    "dropout",
    "threshold",
    "temperature",
    "num_frames",
    "preprocess",
    "metadata",
}
_HF_ENCODERS = ("hf_image", "hf_audio")
# Bounds of the integer options of the built-in encoders and fusions; anything else an encoder
# or fusion takes is bounded by _MAX_INT and, together, by MAX_PARAMETERS.
_INT_BOUNDS: dict[str, tuple[int, int]] = {
    "embed_dim": (1, 4096),
    "width": (1, 512),
    "hidden": (1, 8192),
    "heads": (1, 64),
    "layers": (1, 32),
    "image_size": (8, 1024),
}
_MAX_DEPTH = 64
_MAX_INT = 1 << 20
_MAX_ITEMS = 4096


def check_num_frames(value: Any, name: str = "num_frames") -> int:
    """``value`` as a frame count in [MIN_NUM_FRAMES, MAX_NUM_FRAMES] (ConfigError otherwise)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not math.isfinite(value)
        or value != int(value)
    ):
        raise ConfigError(f"{name} must be a whole number of frames, got {value!r}")
    if not MIN_NUM_FRAMES <= value <= MAX_NUM_FRAMES:
        raise ConfigError(
            f"{name} must be between {MIN_NUM_FRAMES} and {MAX_NUM_FRAMES}, got {value!r}"
        )
    return int(value)


def check_probability(value: Any, name: str) -> float:
    """``value`` as a float in [0, 1] (ConfigError otherwise, NaN included)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value <= 1:
        raise ConfigError(f"{name} must be a number between 0 and 1, got {value!r}")
    return float(value)


def read_config(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``, refused when it is too large or not an object."""
    try:
        size = path.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise CheckpointError(
                f"{path} is {size} bytes; a detector config.json is a few kilobytes"
            )
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"cannot read the detector config {path}: {exc}") from exc
    if not isinstance(config, dict):
        raise CheckpointError(f"{path} must hold a JSON object of detector settings")
    return config


def check_config(
    config: Mapping[str, Any], *, from_file: set[str] | frozenset[str] = frozenset()
) -> dict[str, Any]:
    """Check the types and ranges of a detector config; return it as constructor arguments.

    Args:
        config: ``Detector`` constructor arguments (a ``config.json`` with caller overrides).
        from_file: the keys whose values came from a file rather than from the caller: local
            folders named there are not followed.

    Raises:
        ConfigError: naming the field, the value and the accepted range.
    """
    from mmdeepfake.encoders import ENCODERS
    from mmdeepfake.fusion import FUSIONS

    unknown = sorted(set(config) - _DETECTOR_FIELDS)
    if unknown:
        raise ConfigError(f"unknown detector settings {unknown}; known: {sorted(_DETECTOR_FIELDS)}")
    checked = dict(config)
    for key, registry in (
        ("image_encoder", ENCODERS),
        ("audio_encoder", ENCODERS),
        ("fusion", FUSIONS),
    ):
        if key in checked:
            name = checked[key]
            if not isinstance(name, str) or name not in registry.names():
                raise ConfigError(f"{key} must be one of {registry.names()}, got {name!r}")
    for key in ("image_encoder_kwargs", "audio_encoder_kwargs", "fusion_kwargs", "metadata"):
        value = checked.get(key)
        if value is not None and not isinstance(value, dict):
            raise ConfigError(f"{key} must be a JSON object, got {type(value).__name__}")
        if key != "metadata":  # free-form facts, never built from; the file size bounds them
            _check_values(value or {}, key, depth=0)
    if "embed_dim" in checked:
        _check_int(checked["embed_dim"], "embed_dim")
    if "dropout" in checked:
        dropout = checked["dropout"]
        if (
            isinstance(dropout, bool)
            or not isinstance(dropout, (int, float))
            or not 0 <= dropout < 1
        ):
            raise ConfigError(f"dropout must be a number in [0, 1), got {dropout!r}")
    if "threshold" in checked:
        checked["threshold"] = check_probability(checked["threshold"], "threshold")
    if "temperature" in checked:
        temperature = checked["temperature"]
        if (
            isinstance(temperature, bool)
            or not isinstance(temperature, (int, float))
            or not 0 < temperature < 1e6
        ):
            raise ConfigError(f"temperature must be a positive number, got {temperature!r}")
    if "num_frames" in checked:
        checked["num_frames"] = check_num_frames(checked["num_frames"])
    if "preprocess" in checked:
        section = checked["preprocess"]
        if not isinstance(section, Mapping):
            raise ConfigError(f"preprocess must be a JSON object, got {type(section).__name__}")
        checked["preprocess"] = check_preprocess(section)
    for role in ("image", "audio"):
        if checked.get(f"{role}_encoder") in _HF_ENCODERS and f"{role}_encoder_kwargs" in from_file:
            _refuse_local_model_id(checked.get(f"{role}_encoder_kwargs") or {}, role)
    return checked


# Bounds of the preprocessing settings. Crops up to 512 pixels and the detector's frame limit
# keep one video's face batch below a gigabyte; the face detector's bounds keep its pyramid short.
_PREPROCESS_INTS: dict[str, tuple[int, int]] = {
    "image_size": (16, 512),
    "sample_rate": (1, 192_000),
    "n_mels": (1, 1024),
    "n_fft": (2, 1 << 16),
    "hop_length": (1, 1 << 16),
    "window_frames": (2, 4096),
    "min_face_size": (1, 4096),
    "face_detect_side": (32, 4096),
}
_MAX_FACE_MARGIN = 3.0
_FACE_SCALE_FACTOR = (0.5, 0.9)
#: Settings the feature code is not parametric in: the audio encoders take a 128 x 128 log-mel
#: image of a 16 kHz window (mmdeepfake.media.features), so another value cannot be honoured.
FIXED_PREPROCESS = ("sample_rate", "n_mels", "n_fft", "hop_length", "window_frames")


def check_preprocess(section: Mapping[str, Any]) -> dict[str, Any]:
    """Check a ``preprocess`` section; return it as ``PreprocessConfig`` arguments.

    Missing keys are left out (they take the defaults). Lists become tuples.

    Raises:
        ConfigError: an unknown key, a value out of range, or an audio front-end setting other
            than the one the feature code implements.
    """
    from mmdeepfake.config import PreprocessConfig

    defaults = {f.name: f.default for f in dataclasses.fields(PreprocessConfig)}
    known = set(defaults)
    unknown = sorted(set(section) - known)
    if unknown:
        raise ConfigError(f"unknown preprocess settings {unknown}; known: {sorted(known)}")
    checked: dict[str, Any] = {}
    for key, value in section.items():
        name = f"preprocess.{key}"
        if key in _PREPROCESS_INTS:
            low, high = _PREPROCESS_INTS[key]
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ConfigError(
                    f"{name} must be a whole number between {low} and {high}, got {value!r}"
                )
        elif key == "num_frames":
            value = check_num_frames(value, name)
        elif key in ("image_mean", "image_std", "face_thresholds"):
            value = _check_triple(value, name, positive=key == "image_std")
        elif key == "face_margin":
            if value is not None and (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not 0 <= value <= _MAX_FACE_MARGIN
            ):
                raise ConfigError(
                    f"{name} must be null (the image encoder's own margin) or a number between "
                    f"0 and {_MAX_FACE_MARGIN}, got {value!r}"
                )
            value = None if value is None else float(value)
        elif key == "face_scale_factor":
            low_f, high_f = _FACE_SCALE_FACTOR
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not low_f <= value <= high_f
            ):
                raise ConfigError(f"{name} must be a number between {low_f} and {high_f}, got {value!r}")
            value = float(value)
        if key in FIXED_PREPROCESS and value != defaults[key]:
            raise ConfigError(
                f"{name} is {value!r}, but mmdeepfake's audio front end is fixed at "
                f"{defaults['sample_rate']} Hz, {defaults['n_mels']} mel bands, n_fft "
                f"{defaults['n_fft']}, hop {defaults['hop_length']} and "
                f"{defaults['window_frames']}-column windows (the audio encoders take a "
                f"{defaults['n_mels']} x {defaults['window_frames']} log-mel image): this "
                "model's preprocessing cannot be reproduced"
            )
        checked[key] = value
    return checked


def _check_triple(value: Any, name: str, *, positive: bool) -> tuple[float, float, float]:
    """Three finite numbers in [0, 1] (in (0, 1] when ``positive``), as a tuple."""
    if (
        not isinstance(value, (list, tuple))
        or len(value) != 3
        or not all(
            not isinstance(v, bool)
            and isinstance(v, (int, float))
            and (0 < v <= 1 if positive else 0 <= v <= 1)
            for v in value
        )
    ):
        bounds = "(0, 1]" if positive else "[0, 1]"
        raise ConfigError(f"{name} must be three numbers in {bounds}, got {value!r}")
    return (float(value[0]), float(value[1]), float(value[2]))


def _check_int(value: Any, name: str) -> None:
    low, high = _INT_BOUNDS.get(name.rsplit(".", 1)[-1], (0, _MAX_INT))
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"{name} must be a whole number between {low} and {high}, got {value!r}")


def _check_values(value: Any, name: str, depth: int) -> None:
    """Bound every number, string and list in a nested kwargs object."""
    if depth > 8:
        raise ConfigError(f"{name} is nested too deeply")
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, int):
        _check_int(value, name)
    elif isinstance(value, float):
        if not math.isfinite(value) or abs(value) > _MAX_INT:
            raise ConfigError(f"{name} must be a finite number of reasonable size, got {value!r}")
    elif isinstance(value, str):
        if len(value) > 1000:
            raise ConfigError(f"{name} is a string of {len(value)} characters; at most 1000")
    elif isinstance(value, (list, tuple, dict)):
        if len(value) > _MAX_ITEMS:
            raise ConfigError(f"{name} has {len(value)} items; at most {_MAX_ITEMS}")
        if name.endswith("depths") and (
            not 1 <= len(value) <= 8
            or not all(
                isinstance(d, int) and not isinstance(d, bool) and 1 <= d <= _MAX_DEPTH
                for d in value
            )
        ):
            raise ConfigError(
                f"{name} must list 1 to 8 stage depths, each between 1 and {_MAX_DEPTH}, "
                f"got {value!r}"
            )
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            _check_values(item, f"{name}.{key}", depth + 1)
    else:
        raise ConfigError(f"{name} has a value of unexpected type {type(value).__name__}")


def is_hub_id(name: str) -> bool:
    """Whether ``name`` is spelled like a hub id ("owner/name") and names no local folder."""
    return bool(_HUB_ID.match(name)) and ".." not in name and not os.path.exists(name)


def _refuse_local_model_id(kwargs: Mapping[str, Any], role: str) -> None:
    model_id = kwargs.get("model_id")
    if model_id is None or (isinstance(model_id, str) and is_hub_id(model_id)):
        return
    raise ConfigError(
        f"the config names {model_id!r} as the {role} encoder's model: that is not a hub id, "
        "and local folders named inside a config are not followed. If you trust that folder, "
        f"pass it yourself: Detector.from_pretrained(..., {role}_encoder_kwargs="
        "{'model_id': FOLDER, ...})."
    )


class _SkipInPlace(TorchFunctionMode):
    """On meta tensors, skip in-place operations (weight initialisation): they change values,
    never shapes, and PyTorch's meta kernels for random initialisers pull in its compiler,
    which takes seconds to import."""

    _RESHAPING = frozenset({"resize_", "resize_as_", "set_"})

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if (
            name.endswith("_")
            and not name.endswith("__")
            and name not in self._RESHAPING
            and args
            and isinstance(args[0], torch.Tensor)
            and args[0].is_meta
        ):
            return args[0]
        return func(*args, **(kwargs or {}))


def implied_shapes(config: Mapping[str, Any]) -> dict[str, tuple[int, ...]] | None:
    """The state-dict shapes a checked config builds, counted without allocating weights.

    Returns None for a config whose encoder must load a model by id to know its shapes (an
    ``hf_*`` encoder with a ``model_id``); the weights' own header bounds that one.

    Raises:
        ConfigError: the model would have more than :data:`MAX_PARAMETERS` parameters.
    """
    from mmdeepfake.detector import Detector

    for role in ("image", "audio"):
        kwargs = config.get(f"{role}_encoder_kwargs") or {}
        if config.get(f"{role}_encoder") in _HF_ENCODERS and kwargs.get("config") is None:
            return None
    try:
        with torch.device("meta"), _SkipInPlace():
            skeleton = Detector(**config)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise ConfigError(
            f"the detector settings do not describe a buildable model: {exc}"
        ) from exc
    shapes = {name: tuple(t.shape) for name, t in skeleton.state_dict().items()}
    count = sum(math.prod(shape) for shape in shapes.values())
    shapes.update(_guard_shapes(skeleton))
    if count > MAX_PARAMETERS:
        raise ConfigError(
            f"these settings describe a model of {count:,} parameters; mmdeepfake loads at most "
            f"{MAX_PARAMETERS:,}. Check the widths and sizes in config.json."
        )
    return shapes


# The unfamiliar-input guard (mmdeepfake.domain) is fitted after training, so a model may or may
# not carry it; when it does, its shapes follow from the encoders' embedding widths.
GUARD_PREFIX = "model.domain_guard."
MAX_GUARD_CLASSES = 2  # class-conditional means: real and fake


def _guard_shapes(skeleton: Any) -> dict[str, tuple[int, ...]]:
    """The largest shapes of the optional guard buffers, for each modality's embedding width."""
    shapes: dict[str, tuple[int, ...]] = {}
    for modality, encoder in (
        ("image", skeleton.model.image_encoder),
        ("audio", skeleton.model.audio_encoder),
    ):
        dim = int(encoder.embed_dim)
        shapes[f"{GUARD_PREFIX}{modality}_means"] = (MAX_GUARD_CLASSES, dim)
        shapes[f"{GUARD_PREFIX}{modality}_precision"] = (dim, dim)
        shapes[f"{GUARD_PREFIX}{modality}_limit"] = ()
    return shapes


def _shape_fits(key: str, expected: tuple[int, ...], found: tuple[int, ...]) -> bool:
    """Whether ``found`` is a shape the config allows: exact, except the guard's class count."""
    if key.startswith(GUARD_PREFIX) and key.endswith("_means"):
        return len(found) == 2 and 1 <= found[0] <= expected[0] and found[1] == expected[1]
    return found == expected


def header_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Tensor shapes from a ``.safetensors`` header, read without reading the weights."""
    try:
        with path.open("rb") as stream:
            (length,) = struct.unpack("<Q", stream.read(8))
            if length > MAX_HEADER_BYTES:
                raise CheckpointError(
                    f"could not load {path}: its header claims {length} bytes, so it is not "
                    "the safetensors file of a detector"
                )
            header = json.loads(stream.read(length))
        return {
            name: tuple(int(d) for d in entry["shape"])
            for name, entry in header.items()
            if name != "__metadata__"
        }
    except (
        OSError,
        struct.error,
        UnicodeDecodeError,
        ValueError,
        TypeError,
        KeyError,
        AttributeError,
    ) as exc:
        raise CheckpointError(
            f"could not load {path}: it is not a readable safetensors file ({exc})"
        ) from exc


def check_weights_match(
    expected: Mapping[str, tuple[int, ...]], weights: Path, source: str
) -> None:
    """Refuse weights whose tensors differ from the config's in name or shape."""
    found = header_shapes(weights)
    required = {k for k in expected if not k.startswith(GUARD_PREFIX)}
    missing = sorted(required - set(found))
    unexpected = sorted(set(found) - set(expected))
    wrong = sorted(k for k in set(expected) & set(found) if not _shape_fits(k, expected[k], found[k]))
    if missing or unexpected or wrong:
        detail = "; ".join(
            part
            for part in (
                f"missing {missing[:3]}" if missing else "",
                f"unexpected {unexpected[:3]}" if unexpected else "",
                ", ".join(
                    f"{k} is {found[k]} in the weights but {expected[k]} in the config"
                    for k in wrong[:2]
                ),
            )
            if part
        )
        raise CheckpointError(
            f"the weights in {source!r} do not match its config.json ({detail}); the folder "
            "must hold the config.json and model.safetensors that Detector.save_pretrained "
            "wrote together"
        )
