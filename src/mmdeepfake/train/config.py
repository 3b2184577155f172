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

_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 1024,
    "kb": 1024,
    "kib": 1024,
    "m": 1024**2,
    "mb": 1024**2,
    "mib": 1024**2,
    "g": 1024**3,
    "gb": 1024**3,
    "gib": 1024**3,
    "t": 1024**4,
    "tb": 1024**4,
    "tib": 1024**4,
}


def fusion_choices() -> tuple[str, ...]:
    """The fusion strategies a run can train: every name in the fusion registry, so a strategy
    registered with :func:`mmdeepfake.fusion.register_fusion` can be trained too."""
    # The registry imports torch: read it when a config is checked, not when one is imported
    # (mmdeepfake train --help stays fast).
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


def _flag(
    help: str,
    *,
    flags: tuple[str, ...] = (),
    metavar: str | None = None,
    default_text: str | None = None,
) -> dict[str, Any]:
    """The metadata of a :class:`TrainConfig` field: what its command-line flag shows.

    ``help`` says what the value does (the flag's help adds the default); ``flags`` are extra
    spellings besides ``--name-with-dashes``; ``default_text`` describes a default that
    depends on other values (shown instead of the bare default).
    """
    return {"help": help, "flags": flags, "metavar": metavar, "default_text": default_text}


def _option(default: Any, help: str, **flag: Any) -> Any:
    """A :class:`TrainConfig` field with an immutable default and its flag's metadata."""
    return field(default=default, metadata=_flag(help, **flag))


@dataclass
class TrainConfig:
    """Everything one training run needs. Field names match the YAML keys and CLI flags.

    Each field's ``metadata["help"]`` is the help of its ``mmdeepfake train`` flag, so a new
    field is a new flag with nothing else to write.
    """

    # data
    bucket: str | None = _option(
        None, "S3 bucket holding the dataset and the outputs; give it or --data"
    )
    prefix: str = _option("dataset/", "dataset prefix in the bucket")
    endpoint_url: str | None = _option(
        None,
        "S3 endpoint URL, for S3-compatible servers such as a local moto or MinIO",
        metavar="URL",
        default_text="AWS S3",
    )
    data_dir: str | None = _option(
        None,
        "local dataset folder in the same layout, instead of --bucket",
        flags=("--data",),
        metavar="DIR",
    )
    output: str | None = _option(
        None,
        "where run folders go",
        flags=("--out",),
        metavar="DIR_OR_S3_URI",
        default_text="s3://BUCKET/outputs/ with --bucket, ./outputs with --data",
    )
    # model
    fusion: str = _option(
        "mid",
        "fusion strategy: early, mid, late, adaptive, attention or any registered one; "
        "'all' trains each and compares them",
        metavar="NAME",
    )
    model: dict[str, Any] = field(
        default_factory=dict,
        metadata=_flag(
            "Detector keyword arguments as a YAML mapping, merged over the --config one, "
            "e.g. '{embed_dim: 64}'",
            metavar="YAML_MAPPING",
            default_text="{}, the Detector's own architecture",
        ),
    )
    dropout: float = _option(0.1, "dropout probability in the encoders and the fusion, in [0, 1)")
    # optimisation
    epochs: int = _option(10, "passes over the training split")
    batch_size: int = _option(16, "samples per step; the memory guard may lower it")
    min_batch_size: int = _option(
        1, "smallest batch size the memory guard may lower to before it stops the run"
    )
    lr: float = _option(3e-4, "learning rate of AdamW")
    weight_decay: float = _option(1e-4, "weight decay of AdamW")
    emotion_weight: float = _option(
        loss_weights.EMOTION_WEIGHT, "weight of the face and voice emotion losses"
    )
    consistency_weight: float = _option(
        loss_weights.CONSISTENCY_WEIGHT,
        "weight of the loss that pulls face and voice emotions together on real clips",
    )
    margin: float = _option(
        loss_weights.MARGIN,
        "distance the consistency loss keeps between face and voice emotions on fakes",
    )
    max_steps_per_epoch: int | None = _option(
        None,
        "stop each epoch after this many steps, for smoke runs",
        default_text="the whole training split",
    )
    grad_clip: float = _option(5.0, "clip the gradient norm to this value; 0 turns it off")
    # runtime
    seed: int = _option(0, "seed of the weights, the shuffling and the dropout")
    num_workers: int = _option(0, "data-loading worker processes")
    prefetch: int = _option(16, "S3 reads in flight per data-loading worker")
    s3_reader: str = _option(
        "auto", "S3 client: auto (s3torchconnector when installed), boto3 or s3torchconnector"
    )
    device: str = _option("auto", "torch device: auto (a GPU when there is one), cpu or cuda")
    memory_budget: str | None = _option(
        None,
        "memory budget such as 3GB (cap at 80%, aim at 70%)",
        metavar="SIZE",
        default_text="the machine's memory",
    )
    resume: str | None = _option(
        None,
        "continue a run from its last checkpoint",
        metavar="RUN_ID|latest",
        default_text="a new run",
    )
    run_id: str | None = _option(
        None, "name of a new run's folder", default_text="the UTC time and a random suffix"
    )
    push_to_hub: str | None = _option(
        None,
        "push the best model with a model card, token from HF_TOKEN",
        metavar="REPO_ID",
        default_text="no push",
    )
    plots: bool = _option(True, "draw the training plots at the end of the run")
    log_every: int = _option(10, "log the loss every this many steps")

    def __post_init__(self) -> None:
        if isinstance(self.model, str):
            self.model = _architecture_options(self.model)
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
            raise ConfigError(
                "model must be an architecture name (see mmdeepfake.architectures) or a mapping "
                "of Detector keyword arguments"
            )
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
    def from_sources(
        cls, config: str | None = None, overrides: dict[str, Any] | None = None
    ) -> TrainConfig:
        """Build from a preset name or YAML path (optional), then apply non-None overrides.

        A mapping overriding a mapping (``model``) is merged into it, key by key, so one
        architecture setting can change without restating the others.
        """
        values = load_config_file(config) if config else {}
        if isinstance(values.get("model"), str):  # spelled out, so an override merges into it
            values["model"] = _architecture_options(values["model"])
        for key, value in (overrides or {}).items():
            if value is None:
                continue
            if isinstance(value, dict) and isinstance(values.get(key), dict):
                value = {**values[key], **value}
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


def _architecture_options(name: str) -> dict[str, Any]:
    """The ``model`` mapping of a named architecture (``mmdeepfake/architectures/NAME.json``)."""
    from mmdeepfake.architectures import model_options

    return model_options(name)


def field_default(name: str) -> Any:
    """The built-in value of a :class:`TrainConfig` field, used when neither ``--config`` nor a
    flag sets it; command help shows it so that every flag says what it falls back to."""
    for f in dataclasses.fields(TrainConfig):
        if f.name == name:
            if f.default_factory is not dataclasses.MISSING:
                return f.default_factory()
            return f.default
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
            out[key] = (
                value
                if isinstance(value, bool)
                else str(value).lower() in ("1", "true", "yes", "on")
            )
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
