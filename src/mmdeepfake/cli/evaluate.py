"""`mmdeepfake evaluate`: score a dataset split with a detector; write metrics, plots, report.

All the work is in :func:`mmdeepfake.evaluate.evaluator.evaluate`; this module parses flags and
prints a short table.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from typing import Any

from mmdeepfake.cli._common import (
    UsageParser,
    add_endpoint_url,
    add_no_progress,
    add_output,
    cli_entry,
    parse_command_line,
    run_cli,
    verbosity_parent,
)
from mmdeepfake.errors import ConfigError

PROG = "mmdeepfake-evaluate"


def _bounds(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--abstain {text!r}: write bounds like 0.6,0.7,0.8"
        ) from None
    if not values or any(not 0.5 <= v <= 1.0 for v in values):
        raise argparse.ArgumentTypeError(f"--abstain {text!r}: every bound must be in [0.5, 1]")
    return values


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    parser = UsageParser(
        prog=prog,
        description="Evaluate a detector on one split of a dataset (S3 bucket or local folder): "
        "metrics.json, metrics.csv, predictions.csv, plots/ and index.html.",
        parents=[verbosity_parent("info")],
    )
    parser.add_argument(
        "--model",
        required=True,
        metavar="DIR_OR_ID",
        help="model folder, Hugging Face repo id, s3://.../models/best, or 'starter' (required)",
    )
    source = parser.add_argument_group("data")
    source.add_argument(
        "--bucket", help="S3 bucket holding the dataset (default: none; give it or --data)"
    )
    source.add_argument(
        "--prefix", default="dataset/", help="dataset prefix in the bucket (default: dataset/)"
    )
    add_endpoint_url(source)
    source.add_argument(
        "--data",
        dest="data_dir",
        metavar="DIR",
        help="local dataset folder instead of --bucket (default: none)",
    )
    parser.add_argument(
        "--split", default="test", help="split to score: train, validate or test (default: test)"
    )
    add_output(
        parser,
        "where to write (default: s3://BUCKET/outputs/evaluations/<time>-<split> "
        "with --bucket, ./outputs/evaluations/... with --data)",
    )
    parser.add_argument(
        "--abstain",
        type=_bounds,
        default=[0.6, 0.7, 0.8, 0.9],
        metavar="B1,B2,...",
        help="confidence bounds for the abstention table (default: 0.6,0.7,0.8,0.9)",
    )
    parser.add_argument(
        "--batch-size",
        dest="batch_size",
        type=int,
        default=16,
        help="samples scored per forward pass (default: 16)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the pairing and of the permutations (default: 0)",
    )
    parser.add_argument(
        "--audit",
        action="append",
        choices=("silence",),  # mmdeepfake.evaluate.evaluator.AUDITS, not imported at parse time
        default=[],
        help="score the split again with a shortcut taken away and report the AUC change: "
        "'silence' trims leading and trailing silence from every recording (default: none)",
    )
    add_no_progress(parser)
    return parser


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def format_table(summary: dict[str, Any]) -> str:
    """The few lines printed after an evaluation."""
    m, c = summary["metrics"], summary["clip_metrics"]
    lines = [
        (
            f"{summary['split']} split of {summary['data']}: {c['n']} clips "
            f"({c['n_real']} real, {c['n_fake']} fake) scored as {m['n']} pairs of a face "
            f"frame and a voice ({m['n_real']} real, {m['n_fake']} fake), "
            f"{summary['skipped']} skipped"
        ),
        (
            f"model {summary['model']} (fusion {summary['fusion']}, "
            f"threshold {summary['threshold']:g}, "
            f"temperature {summary['temperature']:.3f})"
        ),
        "",
        f"{'metric':<22}{'pairs':>10}{'clips':>10}",
    ]
    for key in (
        "accuracy",
        "precision",
        "recall",
        "f1",
        "roc_auc",
        "average_precision",
        "eer",
        "eer_threshold",
        "best_f1_threshold",
    ):
        lines.append(f"{key:<22}{_fmt(m[key]):>10}{_fmt(c[key]):>10}")
    confusion = [" ".join(str(v) for row in x["confusion_matrix"] for v in row) for x in (m, c)]
    lines.append(f"{'confusion TN FP FN TP':<22}{confusion[0]:>10}{confusion[1]:>10}")
    lines += ["", f"{'ablation':<22}{'ROC-AUC':>10}"]
    lines += [f"{row['name']:<22}{_fmt(row['roc_auc']):>10}" for row in summary["ablation"]]
    lines += ["", f"{'abstain below':<22}{'coverage':>10}{'accuracy':>10}"]
    lines += [
        f"{row['bound']:<22g}{_fmt(row['coverage']):>10}{_fmt(row['accuracy']):>10}"
        for row in summary["abstention"]
    ]
    if summary.get("by_category"):
        lines += ["", f"{'category':<22}{'pairs':>10}{'ROC-AUC':>10}{'accuracy':>10}{'EER':>10}"]
        lines += [
            f"{name:<22}{row['n']:>10}{_fmt(row['roc_auc']):>10}"
            f"{_fmt(row['accuracy']):>10}{_fmt(row['eer']):>10}"
            for name, row in summary["by_category"].items()
        ]
    silence = summary.get("audit", {}).get("silence")
    if silence:
        lines += [
            "",
            (
                f"silence audit: ROC-AUC {_fmt(silence['auc'])} -> "
                f"{_fmt(silence['auc_trimmed'])} with leading/trailing silence trimmed "
                f"(drop {_fmt(silence['drop'])})"
            ),
        ]
    if "note" in m:
        lines += ["", f"note: {m['note']}"]
    lines += ["", "clips: each clip's score is the mean fake probability of its pairs"]
    return "\n".join(lines)


def _main(argv: Sequence[str] | None = None, prog: str = PROG) -> int:
    args = parse_command_line(build_parser(prog), argv)
    if args.batch_size < 1:
        raise ConfigError("--batch-size must be at least 1")
    from mmdeepfake.evaluate.evaluator import evaluate

    result = evaluate(
        args.model,
        bucket=args.bucket,
        prefix=args.prefix,
        endpoint_url=args.endpoint_url,
        data_dir=args.data_dir,
        split=args.split,
        output=args.output,
        abstain_bounds=args.abstain,
        batch_size=args.batch_size,
        seed=args.seed,
        progress=not args.no_progress,
        audit=tuple(dict.fromkeys(args.audit)),
    )
    print(format_table(result.summary))
    print(f"\nwritten to {result.output_uri} (open index.html)")
    return 0


main = cli_entry(_main)


def cli() -> None:
    run_cli(_main)


if __name__ == "__main__":
    cli()
