"""Running the two halves of a prediction at once, and torch's thread setting around it."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from mmdeepfake import Detector, threads
from mmdeepfake.errors import NoAudioTrackError, NoFaceFoundError
from mmdeepfake.testing import media as mf
from tiny_models import TINY_ARCH

CPU = torch.device("cpu")


def threads_of_a_new_thread() -> int:
    """Torch's thread count as a thread started now sees it (the process-wide default)."""
    seen = []
    later = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
    later.start()
    later.join()
    return seen[0]


def test_run_alongside_uses_a_second_thread_and_returns_both_results():
    callers = {}

    def side():
        callers["side"] = threading.get_ident()
        return "side"

    def main():
        callers["main"] = threading.get_ident()
        return "main"

    assert threads.run_alongside(side, main) == ("main", "side")
    assert callers["main"] == threading.get_ident() != callers["side"]

    assert threads.run_alongside(side, main, overlap=False) == ("main", "side")
    assert callers["side"] == callers["main"] == threading.get_ident()


@pytest.mark.parametrize("overlap", [True, False])
def test_run_alongside_raises_the_side_error_first(overlap):
    def fails(error):
        def run():
            raise error

        return run

    with pytest.raises(KeyError):
        threads.run_alongside(fails(KeyError("side")), fails(ValueError("main")), overlap=overlap)
    with pytest.raises(ValueError):
        threads.run_alongside(lambda: 1, fails(ValueError("main")), overlap=overlap)
    with pytest.raises(KeyError):
        threads.run_alongside(fails(KeyError("side")), lambda: 1, overlap=overlap)


def test_main_still_runs_to_the_end_when_the_side_fails():
    finished = []

    def side():
        raise KeyError("side")

    with pytest.raises(KeyError):
        threads.run_alongside(side, lambda: finished.append("main"))
    assert finished == ["main"]


def test_torch_threads_limits_and_restores():
    before = torch.get_num_threads()
    with threads.torch_threads(1, CPU):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with threads.torch_threads(None, CPU):
        assert torch.get_num_threads() == before


def test_a_helper_thread_restores_the_callers_setting_for_threads_started_later():
    torch.set_num_threads(2)
    try:

        def helper():
            # This thread's own default may already be 1; what it leaves must be the caller's 2.
            torch.set_num_threads(1)
            with threads.torch_threads(1, CPU, restore=2):
                pass

        worker = threading.Thread(target=helper)
        worker.start()
        worker.join()
        assert threads_of_a_new_thread() == 2
    finally:
        torch.set_num_threads(2)


def test_may_overlap_follows_the_thread_budget():
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert not threads.may_overlap(CPU)
        assert threads.may_overlap(torch.device("cuda"))  # the device does the work
        torch.set_num_threads(2)
        assert threads.may_overlap(CPU)
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="module")
def detector() -> Detector:
    torch.manual_seed(0)
    return Detector(**TINY_ARCH)


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> str:
    return str(
        mf.face_video(tmp_path_factory.mktemp("media") / "face.mp4", seconds=4.0, size=(320, 240))
    )


def _serial(monkeypatch) -> None:
    """Force every stage onto the calling thread, as on a one-thread budget."""
    monkeypatch.setattr(threads, "may_overlap", lambda device: False)
    monkeypatch.setattr("mmdeepfake.pipeline.may_overlap", lambda device: False)


@pytest.mark.slow
def test_overlapped_prediction_equals_the_serial_one(detector, clip, monkeypatch):
    torch.set_num_threads(2)
    overlapped = detector.predict(clip)
    _serial(monkeypatch)
    serial = detector.predict(clip)
    assert overlapped.label == serial.label
    assert overlapped.fake_probability == pytest.approx(serial.fake_probability, abs=1e-5)
    assert [f.frame_index for f in overlapped.faces] == [f.frame_index for f in serial.faces]
    for a, b in zip(overlapped.faces, serial.faces):
        assert a.box == pytest.approx(b.box, abs=0.5)
    # float32 sums split over another number of threads round differently: a fresh-clone run
    # once saw consistencies 1.07e-5 apart; a wrong input would move them by far more.
    for a, b in zip(overlapped.segments, serial.segments):
        assert a.consistency == pytest.approx(b.consistency, abs=1e-4)
    assert overlapped.warnings == serial.warnings


@pytest.mark.slow
def test_prediction_leaves_the_thread_setting_alone(detector, clip):
    for count in (1, 2):
        torch.set_num_threads(count)
        detector.predict(clip)
        assert torch.get_num_threads() == count
        assert threads_of_a_new_thread() == count
    torch.set_num_threads(2)


@pytest.mark.slow
@pytest.mark.parametrize("overlap", [True, False])
def test_the_voice_error_wins_when_both_halves_fail(tmp_path, detector, monkeypatch, overlap):
    """No face and no audio track: the missing audio is reported, overlapped or not."""
    if not overlap:
        _serial(monkeypatch)
    path = mf.write_video(tmp_path / "blank.mp4", np.full((20, 120, 160, 3), 90, np.uint8))
    with pytest.raises(NoAudioTrackError):
        detector.predict(str(path))
    noise = np.random.default_rng(0).integers(0, 255, (25, 120, 160, 3), dtype=np.uint8)
    path = mf.write_video(tmp_path / "noise.mp4", noise, audio=mf.voice_like(1.0))
    with pytest.raises(NoFaceFoundError):
        detector.predict(str(path), require="both")  # with "any", the voice is scored alone
