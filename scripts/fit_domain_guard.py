#!/usr/bin/env python3
"""Give a saved detector its unfamiliar-input guard, fitted on the dataset it was trained on.

Detectors trained by ``mmdeepfake-train`` get their guard at the end of training; this script
fits one onto a detector saved without it (or refits it), from a dataset folder in the layout
``mmdeepfake-synth`` writes. It embeds the train and validate splits the way training sees them
(same loader, face crops, one voice window per sample), fits the guard on train, sets the
limits from validate (``--quantile``), fits each one-modality head's temperature, and saves the
detector (weights, config, card) to ``--out`` (default: over the model folder). With ``--test``
it also reports, for each extra dataset folder (all of its splits), the share of samples the
guard calls familiar and the detector's ROC-AUC there, so the guard can be checked against
held-out data. Works for any saved detector, whatever its encoders.

    python scripts/fit_domain_guard.py src/mmdeepfake/starter --data /tmp/starter-train \
        --test /tmp/starter-test
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np


def _dataset(folder: Path):
    from mmdeepfake.data.layout import scan_dataset
    from mmdeepfake.data.storage import open_storage

    storage = open_storage(folder)
    prefix = "dataset/" if (folder / "dataset").is_dir() else ""
    return storage, scan_dataset(storage, prefix)


def _check(detector, folder: Path, seed: int) -> dict:
    """Familiar share per modality and ROC-AUC of the detector on every split of ``folder``
    that holds files."""
    from mmdeepfake.domain import embed_split, familiar_shares
    from mmdeepfake.metrics import roc_auc

    storage, index = _dataset(folder)
    report = {}
    for split in index.splits():
        emb = embed_split(detector, storage, index, split, seed=seed)
        shares = familiar_shares(detector, emb)
        both = np.asarray([True] * len(emb.labels))
        for m in shares:
            guard = detector.model.domain_guard
            both &= (guard.distances(m, getattr(emb, m)) <= guard.limit(m)).numpy()
        report[split] = {
            "samples": len(emb.labels),
            "familiar_share": {**shares, "both": float(both.mean())},
            "roc_auc": float(roc_auc(emb.labels, emb.fake_logits)),
        }
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="folder written by Detector.save_pretrained")
    parser.add_argument(
        "--data",
        type=Path,
        required=True,
        help="the dataset folder the model was trained on (train + validate)",
    )
    parser.add_argument("--out", type=Path, help="where to save (default: over MODEL)")
    parser.add_argument(
        "--test",
        type=Path,
        action="append",
        default=[],
        help="dataset folder of held-out data to report familiar share and ROC-AUC on (repeatable)",
    )
    parser.add_argument(
        "--quantile",
        type=float,
        default=0.99,
        help="limit = this quantile of the validation distances (0.99)",
    )
    parser.add_argument("--seed", type=int, default=0, help="pairing seed of the splits (0)")
    parser.add_argument(
        "--describe",
        help="how the card and metadata name the fitting data (default: the --data folder)",
    )
    args = parser.parse_args()

    from mmdeepfake.detector import Detector
    from mmdeepfake.domain import embed_split, familiar_shares, fit_detector_guard
    from mmdeepfake.model_card import with_guard_section

    started = time.time()
    detector = Detector.from_pretrained(str(args.model.resolve()))
    storage, index = _dataset(args.data)
    train = embed_split(detector, storage, index, "train", seed=args.seed)
    validation = embed_split(detector, storage, index, "validate", seed=args.seed)
    print(
        f"embedded {len(train.labels)} train and {len(validation.labels)} validation samples "
        f"in {time.time() - started:.0f} s",
        flush=True,
    )
    record = fit_detector_guard(
        detector,
        train,
        validation,
        quantile=args.quantile,
        source=args.describe or f"the train split of {args.data}",
    )
    report = {
        "guard": record,
        "heads": detector.metadata["modality_calibration"],
        "familiar_share": {
            "train": familiar_shares(detector, train),
            "validate": familiar_shares(detector, validation),
        },
    }
    for folder in args.test:
        report[f"test:{folder}"] = _check(detector, folder, args.seed)
    out = args.out or args.model
    card = detector.model_card()
    detector.card = with_guard_section(card, detector.config.to_dict())
    detector.save_pretrained(out)
    print(json.dumps(report, indent=2, default=str))
    print(f"saved to {out} in {time.time() - started:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
