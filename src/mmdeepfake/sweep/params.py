"""What a sweep can vary, and the reading of ``--values``.

Kept apart from the runs so that the command line can list the parameters (and check the
values) without importing training, evaluation or torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mmdeepfake.errors import ConfigError
from mmdeepfake.train.config import fusion_choices

SWEEP_PARAMS: dict[str, type] = {"lr": float, "batch_size": int, "dropout": float, "fusion": str}
PLOT_FOR_PARAM = {
    "lr": "learning_rate_sensitivity",
    "batch_size": "batch_size_impact",
    "dropout": "dropout_analysis",
    "fusion": "fusion_comparison",
}


def parse_values(param: str, values: Sequence[str]) -> list[Any]:
    """``["1e-4,3e-4", "1e-3"]`` -> ``[0.0001, 0.0003, 0.001]``; ``all`` fusions -> each one."""
    if param not in SWEEP_PARAMS:
        raise ConfigError(f"cannot sweep {param!r}: choose one of {', '.join(SWEEP_PARAMS)}")
    items = [v.strip() for text in values for v in str(text).split(",") if v.strip()]
    if param == "fusion" and items == ["all"]:
        items = list(fusion_choices())
    if not items:
        raise ConfigError("--values needs at least one value")
    cast = SWEEP_PARAMS[param]
    try:
        parsed = [cast(v) for v in items]
    except ValueError:
        raise ConfigError(
            f"--values for {param} must be {cast.__name__} numbers, got {items}"
        ) from None
    if len(set(parsed)) != len(parsed):
        raise ConfigError(f"--values has repeated values: {items}")
    return parsed
