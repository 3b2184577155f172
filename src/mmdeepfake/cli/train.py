"""`mmdeepfake train`: train a detector on a dataset streamed from S3 (or a local folder).

Every :class:`~mmdeepfake.train.config.TrainConfig` field is a flag, generated from the field
(its type, and its help from the field's metadata): ``batch_size`` is ``--batch-size``, and a
new field is a new flag. ``--config`` (a YAML file or a preset name: tiny, default) sets the
starting values, and any flag given overrides its key; the resolved configuration is what the
run saves (``logs/summary.json`` and every checkpoint). Works as a console script and under
torchrun (``torchrun --nproc-per-node N -m mmdeepfake.cli.train``).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
from collections.abc import Callable, Sequence
from typing import Any

from mmdeepfake.cli._common import (
    UsageParser,
    add_no_progress,
    cli_entry,
    endpoint_url,
    parse_command_line,
    run_cli,
    verbosity_parent,
)
from mmdeepfake.train.config import TrainConfig, field_default, fusion_choices

__all__ = ["PROG", "add_config_flags", "build_parser", "config_from_args", "main"]

PROG = "mmdeepfake-train"


def _fusion(name: str) -> str:
    """A registered fusion strategy or ``all`` (the registry, and torch, load only when the
    flag is given, so ``--help`` stays fast)."""
    if name != "all" and name not in fusion_choices():
        raise argparse.ArgumentTypeError(
            f"unknown fusion {name!r}: choose one of {', '.join(fusion_choices())} or all"
        )
    return name


# Flags whose values argparse can check beyond their type: a typo fails before any data loads.
_TYPES: dict[str, Callable[[str], Any]] = {"endpoint_url": endpoint_url, "fusion": _fusion}


def _yaml_mapping(text: str) -> dict[str, Any]:
    """An argparse ``type``: a YAML (or JSON) mapping such as ``{embed_dim: 64}``."""
    import yaml

    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        value = None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a YAML mapping such as '{{embed_dim: 64, fusion_kwargs: {{}}}}'"
        )
    return value


def _flag_kwargs(spec: dataclasses.Field[Any]) -> dict[str, Any]:
    """The ``add_argument`` keywords of one config field: type, choices, metavar, help."""
    meta = spec.metadata
    kind = str(spec.type).replace(" | None", "")
    default = meta.get("default_text") or field_default(spec.name)
    if default is None:
        default = "none"
    elif isinstance(default, bool):
        default = "on" if default else "off"
    text = f"{meta.get('help', '')} (default: {default}, unless --config sets it)"
    kwargs: dict[str, Any] = {"dest": spec.name, "default": None, "help": text.replace("%", "%%")}
    if kind == "bool":
        kwargs["action"] = argparse.BooleanOptionalAction
        return kwargs
    if kind.startswith("dict"):
        kwargs["type"] = _yaml_mapping
    else:
        kwargs["type"] = _TYPES.get(spec.name) or {"int": int, "float": float}.get(kind, str)
    if meta.get("metavar"):
        kwargs["metavar"] = meta["metavar"]
    return kwargs


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per :class:`TrainConfig` field, plus ``--config``; every default is None, so
    only the flags given override the config file (read them with :func:`config_from_args`)."""
    group = parser.add_argument_group(
        "training configuration",
        "Each flag sets the config key of the same name "
        "(--batch-size is batch_size) and overrides --config.",
    )
    group.add_argument(
        "--config",
        metavar="FILE_OR_PRESET",
        help="YAML config file, or a preset name: tiny, default (default: none; "
        "the built-in values shown for each flag)",
    )
    for spec in dataclasses.fields(TrainConfig):
        flags = (f"--{spec.name.replace('_', '-')}", *spec.metadata.get("flags", ()))
        group.add_argument(*flags, **_flag_kwargs(spec))


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The resolved configuration: ``--config`` (if any), then every flag that was given."""
    overrides = {spec.name: getattr(args, spec.name) for spec in dataclasses.fields(TrainConfig)}
    return TrainConfig.from_sources(args.config, overrides)


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    parser = UsageParser(
        prog=prog,
        description="Train an audio-visual deepfake detector on data streamed from S3 "
        "(--bucket) or a local folder (--data). Artifacts go to "
        "s3://BUCKET/outputs/<run_id>/ or --output.",
        parents=[verbosity_parent("info")],
    )
    add_config_flags(parser)
    add_no_progress(parser)
    return parser


def _main(argv: Sequence[str] | None = None, prog: str = PROG) -> int:
    args = parse_command_line(build_parser(prog), argv)
    rank = int(os.environ.get("RANK", "0"))
    if rank != 0:
        for handler in logging.getLogger().handlers:
            handler.setLevel(logging.WARNING)
    from mmdeepfake import sweep
    from mmdeepfake.train import trainer

    config = config_from_args(args)
    run = sweep.train_every_fusion if config.fusion == "all" else trainer.train
    result = run(config, progress=not args.no_progress and rank == 0)
    if rank == 0:
        best = result.best_metrics
        auc = best.get("val_auc")
        print(
            f"run {result.run_id}: best epoch {best.get('epoch')}, validation ROC-AUC "
            f"{auc if auc is None else f'{auc:.4f}'}, {result.skipped_samples} sample(s) "
            f"skipped; outputs in {result.output_uri}"
        )
        if result.comparison:
            for row in result.comparison:
                value = row.get("val_auc")
                print(
                    f"  {row['name']:<12} {row['kind']:<9} val AUC "
                    f"{'nan' if value is None else f'{value:.4f}'}"
                )
    return 0


# The console script calls main() directly, so the error handling wraps it here: user errors
# print one line and exit non-zero, never a traceback.
main = cli_entry(_main)


def cli() -> None:
    run_cli(_main)


if __name__ == "__main__":
    cli()
