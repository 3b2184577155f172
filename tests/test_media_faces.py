"""The MTCNN cascade on real photographs and generated clips; crops; NMS; missing weights."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from mmdeepfake.errors import CheckpointError
from mmdeepfake.media import faces
from mmdeepfake.media.faces import FaceBox, FaceDetector, center_crop_face, crop_faces, nms
from mmdeepfake.testing import media as mf

# Face regions (forehead to chin, cheek to cheek) read off crops of the photos saved as PNG.
HOPPER_FACE = (175, 120, 345, 340)
ASTRONAUT_FACE = (180, 70, 265, 180)


def iou(box: FaceBox, ref: tuple[float, float, float, float]) -> float:
    ix = max(0.0, min(box.x2, ref[2]) - max(box.x1, ref[0]))
    iy = max(0.0, min(box.y2, ref[3]) - max(box.y1, ref[1]))
    inter = ix * iy
    union = box.width * box.height + (ref[2] - ref[0]) * (ref[3] - ref[1]) - inter
    return inter / union


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    return FaceDetector.shared()


@pytest.mark.parametrize(
    ("photo", "face"), [(mf.face_photo, HOPPER_FACE), (mf.astronaut, ASTRONAUT_FACE)]
)
def test_finds_the_face_in_real_photos(detector, photo, face):
    image = photo()
    (box,) = detector.detect([image])
    assert box is not None and box.score > 0.95
    assert iou(box, face) > 0.6
    assert set(box.to_dict()) == {"x1", "y1", "x2", "y2", "score"}


def test_photos_of_different_sizes_in_one_call(detector):
    boxes = detector.detect([mf.face_photo(), mf.astronaut()], track=False)
    assert iou(boxes[0], HOPPER_FACE) > 0.6 and iou(boxes[1], ASTRONAUT_FACE) > 0.6


def test_no_face_in_noise_or_gradient(detector):
    noise = np.random.default_rng(0).integers(0, 256, (240, 320, 3), dtype=np.uint8)
    gradient = np.broadcast_to(
        np.linspace(0, 255, 320, dtype=np.uint8)[None, :, None], (240, 320, 3)
    ).copy()
    assert detector.detect([noise, gradient], track=False) == [None, None]
    assert detector.detect_all([noise]) == [[]]


def test_boxes_are_in_original_pixels(detector):
    photo = mf.face_photo()
    big = np.asarray(
        __import__("PIL.Image", fromlist=["Image"]).fromarray(photo).resize((1024, 1200))
    )
    (box,) = detector.detect([big])  # downscaled to 320 inside, mapped back
    scaled = tuple(v * 2 for v in HOPPER_FACE)
    assert iou(box, scaled) > 0.6


def test_tracking_matches_full_detection_on_a_clip(detector):
    frames = mf.face_frames(16, size=(320, 240))
    tracked = detector.detect(frames)
    full = detector.detect(frames, track=False)
    assert all(b is not None for b in tracked)
    for a, b in zip(tracked, full):
        assert iou(a, (b.x1, b.y1, b.x2, b.y2)) > 0.7


@pytest.mark.parametrize("count", [3, 16, 20])
@pytest.mark.parametrize("track", [True, False])
def test_two_threads_find_what_one_thread_finds(detector, count, track):
    """With a 2-thread budget the frames are split between two threads; nothing may change."""
    frames = mf.face_frames(count, size=(320, 240))
    frames[count // 2] = 0  # a frame without a face in the middle
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = detector.detect(frames, track=track)
        torch.set_num_threads(2)
        two = detector.detect(frames, track=track)
    finally:
        torch.set_num_threads(before)
    assert [b is None for b in one] == [b is None for b in two]
    assert one[count // 2] is None
    for a, b in zip(one, two):
        if a is not None:
            assert (a.x1, a.y1, a.x2, a.y2, a.score) == pytest.approx(
                (b.x1, b.y1, b.x2, b.y2, b.score), abs=1e-3
            )


def test_tracking_falls_back_when_the_face_moves_away(detector):
    frames = mf.face_frames(9, size=(480, 240), face_height=150)
    frames[1:] = np.roll(frames[1:], 200, axis=2)  # the face jumps far from frame 0's box
    boxes = detector.detect(frames)
    assert all(b is not None for b in boxes)
    assert all(b.x1 > boxes[0].x1 + 150 for b in boxes[1:])


def test_crops(detector):
    photo = mf.face_photo()
    box = detector.detect([photo])[0]
    crops = crop_faces([photo, photo], [box, None], size=112)
    assert crops.shape == (2, 112, 112, 3) and crops.dtype == np.uint8
    assert not np.array_equal(crops[0], crops[1])
    corner = FaceBox(0, 0, 40, 60, 0.99)  # square crop shifted inside the frame
    huge = FaceBox(-100, -100, 700, 800, 0.99)  # larger than the frame: padded with black
    out = crop_faces([photo, photo], [corner, huge], size=64)
    assert out.shape == (2, 64, 64, 3)
    assert out[0].mean() > 20 and out[1][:4].max() == 0
    assert center_crop_face(photo, 224).shape == (224, 224, 3)
    with pytest.raises(ValueError):
        crop_faces([photo], [])


def test_nms_is_greedy_and_per_group():
    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30]], dtype=torch.float)
    scores = torch.tensor([0.8, 0.9, 0.7])
    assert nms(boxes, scores, 0.5).tolist() == [1, 2]
    assert sorted(nms(boxes, scores, 0.5, groups=torch.tensor([0, 1, 0])).tolist()) == [0, 1, 2]
    assert nms(torch.zeros(0, 4), torch.zeros(0), 0.5).numel() == 0


def test_missing_weights_say_how_to_install(tmp_path, monkeypatch):
    with pytest.raises(CheckpointError, match="pip install --no-deps facenet-pytorch==2.6.0"):
        FaceDetector(weights_dir=tmp_path)
    monkeypatch.setattr(faces.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(CheckpointError, match="pip install --no-deps facenet-pytorch==2.6.0"):
        faces.mtcnn_weights_dir()


def test_weights_load_without_importing_facenet_pytorch(detector):
    assert "facenet_pytorch" not in sys.modules
    assert "torchvision" not in sys.modules


def test_detection_restores_the_thread_setting(detector):
    before = torch.get_num_threads()
    detector.detect([mf.astronaut()])
    assert torch.get_num_threads() == before
