"""Evaluating a saved detector on a dataset split: :mod:`mmdeepfake.evaluate.evaluator`.

The metrics, the calibration and the figures it uses moved to the library core
(:mod:`mmdeepfake.metrics`, :mod:`mmdeepfake.calibration`) and to :mod:`mmdeepfake.reports`;
their old module paths here stay importable.
"""

from __future__ import annotations

import sys

from mmdeepfake import calibration, metrics
from mmdeepfake.reports import plots, report

for _name, _module in {
    "metrics": metrics,
    "calibration": calibration,
    "plots": plots,
    "report": report,
}.items():
    sys.modules[f"{__name__}.{_name}"] = _module
