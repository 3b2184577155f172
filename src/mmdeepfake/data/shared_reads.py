"""One read per recording and epoch: the frames of a clip share their decoded voice.

Every face image of a clip is paired with the clip's one recording, so an epoch asks for each
recording as many times as its clip has frames (K). Reading and decoding it each time costs a
GET per sample (on S3, a request's CPU on both ends) and a decode per sample, for the same
window every time. :class:`SharedReads` loads each value once, hands it to every sample of the
epoch that asks for it, and drops it after the last one.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from typing import Generic, TypeVar

__all__ = ["SharedReads"]

T = TypeVar("T")


class SharedReads(Generic[T]):
    """Values loaded once per key and shared by the ``uses`` that ask for them.

    ``uses`` lists every key as many times as it will be asked for (one loader worker's epoch,
    in any order). A value is held from its first request until its last one; at most
    ``capacity`` values are held at once, and a key first met when that many are held is loaded
    again at each request (memory stays bounded on datasets of any size). Thread-safe: a request
    for a key whose load is in flight on another thread waits for that load instead of starting
    its own. A load that fails raises its error to every request it answers, as separate loads
    would have.
    """

    def __init__(self, uses: Iterable[str], load: Callable[[str], T], capacity: int) -> None:
        self._remaining = Counter(uses)
        self._load = load
        self._capacity = max(0, int(capacity))
        self._held: dict[str, Future[T]] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> T:
        """The value of ``key``: held, in flight on another thread, or loaded now."""
        with self._lock:
            self._remaining[key] -= 1
            last_use = self._remaining[key] <= 0
            future = self._held.get(key)
            owner = future is None
            if future is None:
                future = Future()
                if not last_use and len(self._held) < self._capacity:
                    self._held[key] = future
            elif last_use:
                del self._held[key]
        if owner:
            try:
                future.set_result(self._load(key))
            except BaseException as exc:  # noqa: BLE001 - handed on to every waiting request
                future.set_exception(exc)
        return future.result()
