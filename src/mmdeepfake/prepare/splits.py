"""Train/validate/test assignment that keeps a person out of two splits.

A detector that has seen a person's real face in training can recognise the person instead of
the manipulation; with the same person in the test split its score overstates what it does on
strangers. So clips are split by *group*, never one by one: the person (``Clip.identity``), or
for datasets without person ids the real video a fake was made from (the adapters put it in
``identity``). A dataset's own split is kept where it gives one, since published results are
reported on it; a split the dataset lacks (DFDC and AV-Deepfake1M publish no labelled test
part, DFDC no validation part) is carved from its training part, by group as well.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace

from mmdeepfake.errors import ConfigError
from mmdeepfake.prepare.clips import SPLITS, Clip

__all__ = ["DEFAULT_FRACTIONS", "assign_splits", "validate_fractions"]

DEFAULT_FRACTIONS = (0.8, 0.1, 0.1)


def validate_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    """``(train, validate, test)`` shares, each >= 0 and summing to 1, train above 0."""
    values = tuple(fractions)
    if len(values) != 3:
        raise ConfigError(
            f"split fractions need 3 values (train, validate, test), got {len(values)}"
        )
    if not all(isinstance(v, (int, float)) and math.isfinite(v) and v >= 0 for v in values):
        raise ConfigError(f"split fractions must be numbers >= 0, got {values}")
    if not math.isclose(sum(values), 1.0, abs_tol=1e-6):
        raise ConfigError(f"split fractions must sum to 1, got {values} (sum {sum(values)})")
    if values[0] <= 0:
        raise ConfigError("the train fraction must be above 0")
    return (float(values[0]), float(values[1]), float(values[2]))


def assign_splits(
    clips: Sequence[Clip],
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    seed: int = 0,
) -> list[Clip]:
    """The clips, in their order, each with its split set.

    Clips with an official split keep it; the splits the official ones lack are carved from
    the official train clips, in proportion to ``fractions`` (with only the validation part
    missing, it takes ``validate / (train + validate)`` of train). Clips without an official
    split are divided by ``fractions``. Either way whole groups move: the clips sharing an
    identity (a clip without one is a group of its own) land in one split, so each split's
    share is off its target by less than the largest group. The same ``seed`` and clips give
    the same assignment.
    """
    shares = dict(zip(SPLITS, validate_fractions(fractions)))
    official = [clip for clip in clips if clip.split is not None]
    free = [clip for clip in clips if clip.split is None]
    assigned: dict[str, str] = {}
    present = {clip.split for clip in official}
    missing = [name for name in SPLITS[1:] if name not in present and shares[name] > 0]
    if missing:
        carved = {name: shares[name] for name in ("train", *missing)}
        train = [clip for clip in official if clip.split == "train"]
        assigned.update(_by_group(train, carved, seed))
    assigned.update(_by_group(free, shares, seed))
    return [replace(clip, split=assigned.get(clip.clip_id, clip.split)) for clip in clips]


def _by_group(clips: Sequence[Clip], shares: dict[str, float], seed: int) -> dict[str, str]:
    """clip id -> split, whole groups at a time, groups in a seeded random order.

    Groups are laid end to end in that order over the clip count and each goes to the split
    whose stretch (``shares`` in order, scaled to the clip count and rounded) holds the group's
    first clip.
    """
    groups: dict[str, list[Clip]] = defaultdict(list)
    for clip in clips:
        key = f"identity:{clip.identity}" if clip.identity is not None else f"clip:{clip.clip_id}"
        groups[key].append(clip)
    order = sorted(groups)
    random.Random(seed).shuffle(order)
    total = sum(shares.values())
    bounds = []
    cumulative = 0.0
    for name, share in shares.items():
        cumulative += share
        # Whole clip counts, so float sums (0.6 + 0.3 + 0.1 < 1) cannot move a boundary.
        bounds.append((round(cumulative / total * len(clips)), name))
    assigned: dict[str, str] = {}
    position = 0
    for key in order:
        name = next((name for edge, name in bounds if position < edge), bounds[-1][1])
        for clip in groups[key]:
            assigned[clip.clip_id] = name
        position += len(groups[key])
    return assigned
