"""Torch's intra-op thread count, and running the two halves of a prediction at once.

A prediction has two independent halves: the visual one (decode frames, find faces, the image
encoder) and the voice one (decode audio, the voice encoder). On CPU most of the visual half
before the image encoder is single-threaded (the video decoder, the face cascade), so the voice
half runs beside it on another core, on one thread of its own, instead of after it; the face
cascade likewise splits the frames of a clip between two threads.

Torch keeps the intra-op thread count per OS thread once a thread has run parallel work, but
``torch.set_num_threads`` also changes the process-wide default that threads starting later
inherit. Whoever changes it therefore restores the value of the thread that started the work,
so concurrent branches cannot leave the process on one thread.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TypeVar

import torch

Main = TypeVar("Main")
Side = TypeVar("Side")


@contextmanager
def torch_threads(
    count: int | None, device: torch.device, restore: int | None = None
) -> Iterator[None]:
    """Run the block with `count` intra-op threads on CPU, then set `restore`.

    `restore` defaults to the calling thread's setting; a helper thread passes the setting of
    the thread that started it. Nothing changes for ``count=None`` or a non-CPU device.
    """
    before = torch.get_num_threads()
    after = before if restore is None else restore
    if count is None or device.type != "cpu" or (count == before and after == before):
        yield
        return
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(after)


def may_overlap(device: torch.device) -> bool:
    """Whether work may run on a second thread: on a GPU, or when torch may use 2+ CPU threads.

    With one intra-op thread the caller has asked for one core (``mmdeepfake-predict --workers``
    gives each worker its share), so everything stays on the calling thread.
    """
    return device.type != "cpu" or torch.get_num_threads() > 1


def run_alongside(
    side: Callable[[], Side], main: Callable[[], Main], *, overlap: bool = True
) -> tuple[Main, Side]:
    """Run `side` on a helper thread while `main` runs on this one; return (main's, side's) results.

    Both run to the end even when one fails, so no work is left running behind the caller. If
    both fail, `side`'s error is raised. With ``overlap=False`` they run one after the other on
    this thread, `side` first, with the same results and the same error.
    """
    if not overlap:
        side_result = side()
        return main(), side_result
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="mmdeepfake") as pool:
        pending = pool.submit(side)
        try:
            main_result = main()
        except BaseException:
            side_error = pending.exception()
            if side_error is not None:
                raise side_error from None
            raise
        return main_result, pending.result()
