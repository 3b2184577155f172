"""`mmdeepfake-train`: train a detector on a dataset streamed from S3 (or a local folder).

Flags override the values of ``--config`` (a YAML file or a preset name: tiny, default). Works
as a console script and under torchrun (``torchrun --nproc-per-node N -m mmdeepfake.cli.train``).
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Sequence

from mmdeepfake.cli._common import cli_entry, run_cli, setup_logging, verbosity, verbosity_parent
from mmdeepfake.train.config import fusion_choices


def _fusion(name: str) -> str:
    """A registered fusion strategy or ``all`` (the registry is read only when the flag is)."""
    if name != "all" and name not in fusion_choices():
        raise argparse.ArgumentTypeError(
            f"unknown fusion {name!r}: choose one of {', '.join(fusion_choices())} or all")
    return name


def _default(name: str) -> str:
    """'(default: VALUE, unless --config sets it)' for the help of a config-backed flag."""
    from mmdeepfake.train.config import field_default

    return f"(default: {field_default(name)}, unless --config sets it)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mmdeepfake-train",
        description="Train an audio-visual deepfake detector on data streamed from S3 "
                    "(--bucket) or a local folder (--data). Artifacts go to "
                    "s3://BUCKET/outputs/<run_id>/ or --output.",
        parents=[verbosity_parent("info")],
    )
    source = parser.add_argument_group("data")
    source.add_argument("--bucket", help="S3 bucket holding the dataset and the outputs "
                                         "(default: none; give it or --data)")
    source.add_argument("--prefix", help=f"dataset prefix in the bucket {_default('prefix')}")
    source.add_argument("--endpoint-url", dest="endpoint_url",
                        help="S3 endpoint URL, for S3-compatible servers (e.g. a local moto) "
                             "(default: AWS S3)")
    source.add_argument("--data", dest="data_dir", metavar="DIR",
                        help="local dataset folder in the same layout, instead of --bucket "
                             "(default: none)")
    source.add_argument("--output", metavar="DIR_OR_S3_URI",
                        help="where run folders go (default: s3://BUCKET/outputs/ with --bucket, "
                             "./outputs with --data)")
    run = parser.add_argument_group("training")
    run.add_argument("--config", metavar="FILE_OR_PRESET",
                     help="YAML config file, or a preset name: tiny, default (default: none; "
                          "the built-in values shown for each flag)")
    run.add_argument("--fusion", type=_fusion, metavar="NAME",
                     help=f"fusion strategy: early, mid, late, adaptive, attention or any "
                          f"registered one; 'all' trains each and compares them "
                          f"{_default('fusion')}")
    run.add_argument("--epochs", type=int,
                     help=f"passes over the training split {_default('epochs')}")
    run.add_argument("--batch-size", dest="batch_size", type=int,
                     help=f"samples per step; the memory guard may lower it "
                          f"{_default('batch_size')}")
    run.add_argument("--lr", type=float, help=f"learning rate of AdamW {_default('lr')}")
    run.add_argument("--dropout", type=float,
                     help=f"dropout probability in the encoders and the fusion, in [0, 1) "
                          f"{_default('dropout')}")
    run.add_argument("--memory-budget", dest="memory_budget", metavar="SIZE",
                     help="memory budget such as 3GB (cap at 80%%, aim at 70%%) (default: "
                          "the machine's memory, unless --config sets it)")
    run.add_argument("--resume", metavar="RUN_ID|latest",
                     help="continue a run from its last checkpoint (default: a new run)")
    run.add_argument("--push-to-hub", dest="push_to_hub", metavar="REPO_ID",
                     help="push the best model with a model card, token from HF_TOKEN "
                          "(default: no push)")
    parser.add_argument("--no-progress", action="store_true",
                        help="hide the progress bar (default: shown when stderr is a terminal)")
    return parser


def _main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    rank = int(os.environ.get("RANK", "0"))
    setup_logging(verbosity(args))
    if rank != 0:
        for handler in logging.getLogger().handlers:
            handler.setLevel(logging.WARNING)
    from mmdeepfake import sweep
    from mmdeepfake.train import trainer
    from mmdeepfake.train.config import TrainConfig

    overrides = {key: getattr(args, key) for key in (
        "bucket", "prefix", "endpoint_url", "data_dir", "output", "fusion", "epochs",
        "batch_size", "lr", "dropout", "memory_budget", "resume", "push_to_hub")}
    config = TrainConfig.from_sources(args.config, overrides)
    run = sweep.train_every_fusion if config.fusion == "all" else trainer.train
    result = run(config, progress=not args.no_progress and rank == 0)
    if rank == 0:
        best = result.best_metrics
        auc = best.get("val_auc")
        print(f"run {result.run_id}: best epoch {best.get('epoch')}, validation ROC-AUC "
              f"{auc if auc is None else f'{auc:.4f}'}, {result.skipped_samples} sample(s) "
              f"skipped; outputs in {result.output_uri}")
        if result.comparison:
            for row in result.comparison:
                value = row.get("val_auc")
                print(f"  {row['name']:<12} {row['kind']:<9} val AUC "
                      f"{'nan' if value is None else f'{value:.4f}'}")
    return 0


# The console script calls main() directly, so the error handling wraps it here: user errors
# print one line and exit non-zero, never a traceback.
main = cli_entry(_main)


def cli() -> None:
    run_cli(_main)


if __name__ == "__main__":
    cli()
