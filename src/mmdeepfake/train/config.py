"""Training configuration: one dataclass filled from a preset or YAML file, then from flags.

Precedence is preset/file < command-line flags, so a team can keep a `config.yaml` next to the
data and still override one value for an experiment. Unknown keys are refused (a typo in a
YAML file would otherwise be silently ignored and the run would not be what the user asked).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from mmdeepfake import loss_weights
from mmdeepfake.errors import ConfigError

PRESETS: tuple[str, ...] = ("tiny", "default")
# Sections a seed-style config.yaml may group keys under; their keys are lifted to the top.
_SECTIONS = ("data", "training", "train", "model_options", "storage", "output", "runtime")

_SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1024, "kib": 1024, "m": 1024**2, "mb": 1024**2,
               "mib": 1024**2, "g": 1024**3, "gb": 1024**3, "gib": 1024**3, "t": 1024**4,
               "tb": 1024**4, "tib": 1024**4}


def fusion_choices() -> tuple[str, ...]:
    """The fusion strategies a run can train: every name in the fusion registry, so a strategy
    registered with :func:`mmdeepfake.fusion.register_fusion` can be trained too."""
    # The registry imports torch: read it when a config is checked, not when one is imported
    # (mmdeepfake-train --help stays fast).
    from mmdeepfake.fusion import FUSIONS

    return FUSIONS.names()


def __getattr__(name: str) -> tuple[str, ...]:
    # FUSION_CHOICES, the old name, reads the registry now rather than a fixed list.
    if name == "FUSION_CHOICES":
        return fusion_choices()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def parse_size(value: str | float | None) -> int | None:
    """Parse a memory size such as ``3GB``, ``512MiB`` or ``2.5g`` into bytes (binary units)."""
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)):
        size = int(value)
    else:
        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", str(value))
        if not match or match.group(2).lower() not in _SIZE_UNITS:
            raise ConfigError(
                f"cannot read the memory size {value!r}: write a number with a unit, "
                "for example 3GB, 512MB or 2.5GiB"
            )
        size = int(float(match.group(1)) * _SIZE_UNITS[match.group(2).lower()])
    if size <= 0:
        raise ConfigError(f"the memory size must be positive, got {value!r}")
    return size


@dataclass
class TrainConfig:
    """Everything one training run needs. Field names match the YAML keys and CLI flags."""

    # data
    bucket: str | None = None
    prefix: str = "dataset/"
    endpoint_url: str | None = None
    data_dir: str | None = None
    output: str | None = None
    # model
    fusion: str = "mid"
    model: dict[str, Any] = field(default_factory=dict)
    dropout: float = 0.1
    # optimisation
    epochs: int = 10
    batch_size: int = 16
    min_batch_size: int = 1
    lr: float = 3e-4
    weight_decay: float = 1e-4
    emotion_weight: float = loss_weights.EMOTION_WEIGHT
    consistency_weight: float = loss_weights.CONSISTENCY_WEIGHT
    margin: float = loss_weights.MARGIN
    max_steps_per_epoch: int | None = None
    grad_clip: float = 5.0
    # runtime
    seed: int = 0
    num_workers: int = 0
    prefetch: int = 16
    s3_reader: str = "auto"
    device: str = "auto"
    memory_budget: str | None = None
    resume: str | None = None
    run_id: str | None = None
    push_to_hub: str | None = None
    plots: bool = True
    log_every: int = 10

    def __post_init__(self) -> None:
        self.validate()

    # -- checks -----------------------------------------------------------------------------

    def validate(self) -> None:
        """Refuse values that would fail later, with a message saying what to change."""
        if self.fusion not in (*fusion_choices(), "all"):
            raise ConfigError(
                f"unknown fusion {self.fusion!r}: choose one of {', '.join(fusion_choices())} "
                "or all"
            )
        for name in ("epochs", "batch_size", "min_batch_size", "prefetch", "log_every"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)!r}")
        if self.min_batch_size > self.batch_size:
            raise ConfigError("min_batch_size must not be larger than batch_size")
        if self.num_workers < 0:
            raise ConfigError("num_workers must be 0 or more")
        if not 0.0 <= float(self.dropout) < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if float(self.lr) <= 0:
            raise ConfigError(f"lr must be positive, got {self.lr!r}")
        if self.max_steps_per_epoch is not None and self.max_steps_per_epoch < 1:
            raise ConfigError("max_steps_per_epoch must be at least 1 when given")
        if self.s3_reader not in ("auto", "boto3", "s3torchconnector"):
            raise ConfigError("s3_reader must be auto, boto3 or s3torchconnector")
        if not isinstance(self.model, dict):
            raise ConfigError("model must be a mapping of Detector keyword arguments")
        parse_size(self.memory_budget)

    def check_source(self) -> None:
        """Exactly one data source: an S3 bucket or a local folder."""
        if bool(self.bucket) == bool(self.data_dir):
            raise ConfigError(
                "give the dataset either with --bucket BUCKET (S3) or with --data DIR "
                "(a local folder), not both and not neither"
            )

    @property
    def memory_budget_bytes(self) -> int | None:
        return parse_size(self.memory_budget)

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with some fields changed (used for `--fusion all` and sweeps)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    # -- construction -----------------------------------------------------------------------

    @classmethod
    def from_sources(cls, config: str | None = None, overrides: dict[str, Any] | None = None
                     ) -> TrainConfig:
        """Build from a preset name or YAML path (optional), then apply non-None overrides."""
        values = load_config_file(config) if config else {}
        for key, value in (overrides or {}).items():
            if value is not None:
                values[key] = value
        return cls.from_dict(values)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ConfigError(
                f"unknown configuration key(s): {', '.join(unknown)}; "
                f"known keys are: {', '.join(sorted(names))}"
            )
        try:
            return cls(**_coerce(values))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"invalid configuration: {exc}") from None


def field_default(name: str) -> Any:
    """The built-in value of a :class:`TrainConfig` field, used when neither ``--config`` nor a
    flag sets it; command help shows it so that every flag says what it falls back to."""
    for f in dataclasses.fields(TrainConfig):
        if f.name == name:
            return f.default_factory() if f.default is dataclasses.MISSING else f.default
    raise KeyError(name)


def _coerce(values: dict[str, Any]) -> dict[str, Any]:
    """Cast YAML scalars to the field types (YAML reads `3e-4` as a string, for example)."""
    types = {f.name: f.type for f in dataclasses.fields(TrainConfig)}
    out: dict[str, Any] = {}
    for key, value in values.items():
        kind = str(types[key])
        if value is None:
            out[key] = None
        elif kind.startswith("int"):
            out[key] = int(value)
        elif kind.startswith("float"):
            out[key] = float(value)
        elif kind.startswith("bool"):
            out[key] = value if isinstance(value, bool) else str(value).lower() in ("1", "true",
                                                                                   "yes", "on")
        elif kind.startswith("str"):
            out[key] = str(value)
        else:
            out[key] = value
    return out


def load_config_file(source: str) -> dict[str, Any]:
    """Read a preset shipped with the package (`tiny`, `default`) or a YAML file."""
    import yaml

    if source in PRESETS:
        text = resources.files("mmdeepfake.presets").joinpath(f"{source}.yaml").read_text()
    else:
        path = Path(source).expanduser()
        if not path.is_file():
            raise ConfigError(
                f"no config file or preset named {source!r}: give a YAML file path or one of "
                f"the presets {', '.join(PRESETS)}"
            )
        text = path.read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{source} must hold a mapping of keys to values")
    flat: dict[str, Any] = {}
    for key, value in data.items():
        key = str(key).replace("-", "_")
        if key in _SECTIONS and isinstance(value, dict):
            flat.update({str(k).replace("-", "_"): v for k, v in value.items()})
        else:
            flat[key] = value
    return flat
