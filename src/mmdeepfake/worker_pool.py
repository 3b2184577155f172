"""A process pool that survives its workers: each input's worker is known, and replaced if it dies.

``multiprocessing.Pool`` waits forever for the result of a worker that was killed (by the
kernel's out-of-memory killer, or a person), and ``concurrent.futures`` fails every pending
input when one worker dies, without saying which input that worker held. Here each worker
takes one input at a time over its own pipe, so when a worker process ends without answering,
exactly the input it held is answered with ``on_death(item, exitcode)``, a fresh worker takes
its place, and the run goes on.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterable, Iterator
from multiprocessing.connection import Connection, wait
from typing import TYPE_CHECKING, Any

from mmdeepfake.errors import MmDeepfakeError, WorkerDiedError

if TYPE_CHECKING:
    from typing_extensions import Self  # typing.Self is Python 3.11+


def _serve(
    conn: Connection, initializer: Callable[..., None], initargs: tuple, fn: Callable
) -> None:
    """Worker process: set up, say so, then answer one item at a time until told to stop."""
    # Ctrl-C reaches the whole process group; the parent decides what happens to the run.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        initializer(*initargs)
    except MmDeepfakeError as exc:
        conn.send(("failed", exc))
        return
    conn.send(("ready", None))
    while True:
        item = conn.recv()
        if item is None:
            return
        conn.send(("done", fn(item)))


class _Worker:
    def __init__(self, context, initializer, initargs, fn) -> None:
        self.conn, child = context.Pipe()
        self.process = context.Process(
            target=_serve, args=(child, initializer, initargs, fn), daemon=True
        )
        self.process.start()
        child.close()
        self.ready = False
        self.holding: tuple[int, Any] | None = None

    def stop(self) -> None:
        if self.process.is_alive():
            self.process.terminate()
        self.process.join(timeout=5)
        self.conn.close()


class WorkerPool:
    """``size`` worker processes, each set up by ``initializer(*initargs)``.

    Raises the :class:`MmDeepfakeError` an initializer raised (a model that cannot be loaded
    fails the run at once, with its message).
    """

    def __init__(
        self,
        size: int,
        initializer: Callable[..., None],
        initargs: tuple,
        context: Any,
    ) -> None:
        self._spawn = lambda fn: _Worker(context, initializer, initargs, fn)
        self.size = size
        self._workers: list[_Worker] = []

    def imap(
        self,
        fn: Callable[[Any], Any],
        items: Iterable[Any],
        on_death: Callable[[Any, int | None], Any],
    ) -> Iterator[Any]:
        """``fn(item)`` for every item, in order; ``on_death(item, exitcode)`` for an item
        whose worker died while holding it."""
        pending = list(enumerate(items))
        pending.reverse()
        results: dict[int, Any] = {}
        next_out = 0
        total = len(pending)
        self._workers = [self._spawn(fn) for _ in range(min(self.size, total))]
        while next_out < total:
            for worker in self._workers:
                if worker.ready and worker.holding is None and pending:
                    worker.holding = pending.pop()
                    worker.conn.send(worker.holding[1])
            by_handle: dict[Any, _Worker] = {}
            for worker in self._workers:
                by_handle[worker.conn] = worker
                by_handle[worker.process.sentinel] = worker
            for handle in wait(list(by_handle)):
                worker = by_handle[handle]
                if worker not in self._workers:
                    continue  # already replaced through its other handle
                self._receive(worker, fn, results, on_death, has_work=bool(pending))
            while next_out in results:
                yield results.pop(next_out)
                next_out += 1

    def _receive(self, worker, fn, results, on_death, has_work: bool) -> None:
        try:
            kind, payload = worker.conn.recv()
        except (EOFError, OSError):  # the process ended without answering
            self._workers.remove(worker)
            worker.stop()
            code = worker.process.exitcode
            if not worker.ready:
                raise WorkerDiedError(
                    f"a worker process ended while loading the model (exit code {code}); "
                    "try fewer workers, or check that the machine has memory to spare"
                ) from None
            if worker.holding is not None:
                index, item = worker.holding
                results[index] = on_death(item, code)
            if has_work:
                self._workers.append(self._spawn(fn))
            return
        if kind == "failed":
            raise payload
        if kind == "ready":
            worker.ready = True
            return
        index, _ = worker.holding
        results[index] = payload
        worker.holding = None

    def close(self) -> None:
        """Stop every worker (also after Ctrl-C or an error)."""
        for worker in self._workers:
            try:
                worker.conn.send(None)
            except OSError:
                pass
        for worker in self._workers:
            worker.process.join(timeout=2)
            worker.stop()
        self._workers = []

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
