"""Memory guard: keep a training run under its memory cap by shrinking the batch size.

The cap is 80% of the machine's memory, or 80% of ``--memory-budget`` when one is given; the
guard aims at 70%. It samples the resident memory of the training process and its data-loader
children at every step (psutil), halves the batch size when usage climbs past the aim, logs each
change, and raises :class:`~mmdeepfake.errors.MemoryBudgetError` when usage stays above the cap
at the smallest batch size, so the trainer can save a checkpoint and stop cleanly instead of
being killed by the kernel's OOM killer with nothing saved.

Memory also climbs between steps, while the data loader decodes the next samples (a long
recording, a large image); a background thread samples every ``sample_interval`` seconds, and
each step's decision uses the peak seen since the previous step, not only the value at the
step. A ``--memory-budget`` larger than the machine's memory is clamped to it with a warning,
since a cap the machine cannot reach protects nothing.
"""

from __future__ import annotations

import csv
import gc
import io
import logging
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass

from mmdeepfake.errors import MemoryBudgetError

CAP_FRACTION = 0.80
TARGET_FRACTION = 0.70
#: Seconds between background samples (while the data loader works between steps).
SAMPLE_INTERVAL = 0.25

log = logging.getLogger("mmdeepfake.train")


def process_tree_rss() -> int:
    """Resident memory in bytes of this process plus its children (data-loader workers)."""
    import psutil

    proc = psutil.Process()
    total = proc.memory_info().rss
    for child in proc.children(recursive=True):
        try:
            total += child.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return total


def machine_memory() -> int:
    import psutil

    return int(psutil.virtual_memory().total)


def format_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    return f"{n:.2f} TB"


@dataclass
class MemorySample:
    step: int
    time: float
    rss_bytes: int
    batch_size: int


class MemoryGuard:
    """Watches memory every step and decides the batch size.

    Between the aim and the cap, shrinking is hysteretic: after a change the guard only shrinks
    again if usage keeps climbing past the level that triggered the last change, because freed
    tensors rarely return memory to the operating system and a flat-but-high RSS is not a
    reason to keep halving. Above the cap it halves at every step until the minimum, then
    gives up after ``patience`` more samples above the cap.
    """

    def __init__(
        self,
        batch_size: int,
        *,
        budget_bytes: int | None = None,
        min_batch_size: int = 1,
        patience: int = 3,
        rss_fn: Callable[[], int] = process_tree_rss,
        sample_interval: float | None = None,
    ) -> None:
        machine = machine_memory()
        if budget_bytes and int(budget_bytes) > machine:
            log.warning(
                "memory guard: --memory-budget %s is more than this machine's %s; using %s",
                format_bytes(int(budget_bytes)),
                format_bytes(machine),
                format_bytes(machine),
            )
            budget_bytes = machine
        self.limit_bytes = int(budget_bytes) if budget_bytes else machine
        self.budget_given = budget_bytes is not None
        self.cap_bytes = int(self.limit_bytes * CAP_FRACTION)
        self.target_bytes = int(self.limit_bytes * TARGET_FRACTION)
        self.batch_size = int(batch_size)
        self.min_batch_size = int(min_batch_size)
        self.patience = patience
        self.rss_fn = rss_fn
        self.samples: list[MemorySample] = []
        self.changes: list[tuple[int, int, int]] = []  # (step, old, new)
        self._over_cap = 0
        self._last_trigger = 0
        self._t0 = time.monotonic()
        self._peak_between = 0  # highest background sample since the last step
        self._lock = threading.Lock()
        # Background sampling measures this process; a custom rss_fn (tests) is only called
        # at steps unless an interval is given.
        if sample_interval is None and rss_fn is process_tree_rss:
            sample_interval = SAMPLE_INTERVAL
        if sample_interval:
            _start_sampler(self, float(sample_interval))

    def sample_between_steps(self) -> None:
        """Record the current memory as a candidate peak for the next step's decision."""
        rss = int(self.rss_fn())
        with self._lock:
            self._peak_between = max(self._peak_between, rss)

    @property
    def peak_bytes(self) -> int:
        return max((s.rss_bytes for s in self.samples), default=0)

    def describe(self) -> str:
        what = "--memory-budget" if self.budget_given else "machine memory"
        return (
            f"memory guard: {what} {format_bytes(self.limit_bytes)}, cap "
            f"{format_bytes(self.cap_bytes)} (80%), aiming at {format_bytes(self.target_bytes)} "
            f"(70%)"
        )

    def check(self, step: int) -> int:
        """Sample memory after a step; return the batch size to use next.

        Raises MemoryBudgetError when usage has stayed above the cap for `patience` samples
        with the batch size already at its minimum.
        """
        with self._lock:
            rss = max(int(self.rss_fn()), self._peak_between)
            self._peak_between = 0
        self.samples.append(MemorySample(step, time.monotonic() - self._t0, rss, self.batch_size))
        climbing = rss > self._last_trigger * 1.02
        over_cap = rss > self.cap_bytes
        can_shrink = self.batch_size > self.min_batch_size
        if can_shrink and (over_cap or (rss > self.target_bytes and climbing)):
            self._shrink(step, rss)
        elif over_cap:
            self._over_cap += 1
            if not can_shrink and self._over_cap >= self.patience:
                raise MemoryBudgetError(
                    f"memory use {format_bytes(rss)} stays above the cap "
                    f"{format_bytes(self.cap_bytes)} (80% of {format_bytes(self.limit_bytes)}) "
                    f"even at batch size {self.batch_size}; a checkpoint was saved. Raise "
                    "--memory-budget, use a smaller model (e.g. --config tiny) or fewer "
                    "data-loader workers, then continue with --resume latest"
                )
        else:
            self._over_cap = 0
        return self.batch_size

    def _shrink(self, step: int, rss: int) -> None:
        old = self.batch_size
        self.batch_size = max(self.min_batch_size, old // 2)
        self._last_trigger = rss
        self._over_cap = 0
        self.changes.append((step, old, self.batch_size))
        log.warning(
            "memory guard: step %d uses %s, above the %s aim; batch size %d -> %d",
            step,
            format_bytes(rss),
            format_bytes(self.target_bytes),
            old,
            self.batch_size,
        )
        gc.collect()

    def to_csv(self) -> str:
        """The samples as CSV (step, time_s, rss_bytes, batch_size, cap_bytes, target_bytes)."""
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(["step", "time_s", "rss_bytes", "batch_size", "cap_bytes", "target_bytes"])
        for s in self.samples:
            writer.writerow(
                [
                    s.step,
                    f"{s.time:.3f}",
                    s.rss_bytes,
                    s.batch_size,
                    self.cap_bytes,
                    self.target_bytes,
                ]
            )
        return buf.getvalue()

    def samples_for_plot(self) -> list[dict]:
        return [{"step": s.step, "time": s.time, "rss_bytes": s.rss_bytes} for s in self.samples]


def _start_sampler(guard: MemoryGuard, interval: float) -> None:
    """A daemon thread calling ``guard.sample_between_steps`` until the guard is collected."""
    import psutil

    ref = weakref.ref(guard)

    def run() -> None:
        while True:
            time.sleep(interval)
            current = ref()
            if current is None:
                return
            try:
                current.sample_between_steps()
            except psutil.Error as exc:  # a worker exiting while it is measured: next sample
                log.debug("memory guard: background sample failed: %s", exc)
            del current

    threading.Thread(target=run, name="mmdeepfake-memory-sampler", daemon=True).start()
