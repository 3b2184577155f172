"""How a training run writes its numbers: CSV tables and log-friendly values.

Run files keep six significant digits and write ``nan`` for an undefined metric (a split with
one class has no ROC-AUC), so a table reads the same in a spreadsheet and in the log.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from typing import Any


def format_metric(value: Any) -> str:
    """A metric for a log line: four decimals, ``nan`` when missing or undefined."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "nan"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.6g}"
    return value


def csv_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """``rows`` as CSV text with a header of ``columns`` (other keys left out)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(row.get(k)) for k in columns})
    return buf.getvalue()
