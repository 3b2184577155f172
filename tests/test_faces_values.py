"""Box arithmetic of the face detector against hand-worked values: overlap by union and by the
smaller box (boxes away from the origin, sub-pixel boxes, a score column), suppression exactly
at its threshold, boxes of different images kept apart, squaring and regression.

``test_media_faces.py`` checks the detector on real photos; these are the cases where a
one-character change to the box functions would otherwise go unseen (``make mutate
MODULES=faces``).
"""

from __future__ import annotations

import pytest
import torch

from mmdeepfake.media.faces import _regress, _square, box_iou, nms


def boxes(*rows):
    return torch.tensor(rows, dtype=torch.float32)


def test_iou_of_boxes_away_from_the_origin():
    a = boxes([10, 20, 30, 60])  # 20 x 40 = 800
    b = boxes([20, 40, 40, 80])  # 20 x 40 = 800, overlap 10 x 20 = 200
    assert box_iou(a, b).item() == pytest.approx(200 / (800 + 800 - 200))
    assert box_iou(a, b, mode="min").item() == pytest.approx(200 / 800)
    assert box_iou(a, boxes([100, 100, 110, 110])).item() == 0.0


def test_iou_of_sub_pixel_boxes():
    a = boxes([0.1, 0.1, 0.5, 0.3])  # 0.4 x 0.2 = 0.08
    b = boxes([0.3, 0.2, 0.7, 0.6])  # 0.4 x 0.4 = 0.16, overlap 0.2 x 0.1 = 0.02
    assert box_iou(a, b).item() == pytest.approx(0.02 / (0.08 + 0.16 - 0.02), rel=1e-4)
    assert box_iou(a, b, mode="min").item() == pytest.approx(0.02 / 0.08, rel=1e-4)


def test_a_score_column_is_not_a_coordinate():
    a = boxes([10, 20, 30, 60, 0.9])
    b = boxes([20, 40, 40, 80, 0.3])
    assert box_iou(a, b).item() == pytest.approx(200 / 1400)
    kept = nms(
        boxes([0, 0, 10, 10, 0.9], [0, 0, 10, 10, 0.8]),
        torch.tensor([0.9, 0.8]),
        0.5,
        groups=torch.tensor([0, 1]),
    )
    assert sorted(kept.tolist()) == [0, 1]


def test_nms_keeps_an_overlap_exactly_at_the_threshold():
    a, b = [0, 0, 10, 10], [0, 0, 10, 5]  # IoU 50 / 100 = 0.5 exactly
    kept = nms(boxes(a, b), torch.tensor([0.9, 0.8]), 0.5)
    assert kept.tolist() == [0, 1]
    assert nms(boxes(a, b), torch.tensor([0.9, 0.8]), 0.49).tolist() == [0]


def test_nms_by_the_smaller_box_suppresses_a_box_inside_another():
    big, small = [0, 0, 100, 100], [10, 10, 30, 30]  # union IoU 0.04, min IoU 1
    scores = torch.tensor([0.9, 0.8])
    assert nms(boxes(big, small), scores, 0.7).tolist() == [0, 1]
    assert nms(boxes(big, small), scores, 0.7, mode="min").tolist() == [0]


def test_boxes_of_different_images_never_suppress_each_other():
    # The same full-size box in two images; a threshold of 0 would suppress any overlap at all.
    same = [0, 0, 50, 50]
    scores = torch.tensor([0.9, 0.8, 0.7])
    kept = nms(boxes(same, same, [0, 0, 50, 49]), scores, 0.0, groups=torch.tensor([0, 1, 0]))
    assert kept.tolist() == [0, 1]


def test_square_grows_the_short_side_around_the_centre():
    got = _square(boxes([10, 20, 30, 60]))  # 20 x 40 around (20, 40)
    torch.testing.assert_close(got, boxes([0, 20, 40, 60]))
    got = _square(boxes([10, 20, 70, 40]))  # 60 x 20 around (40, 30)
    torch.testing.assert_close(got, boxes([10, 0, 70, 60]))


def test_regress_moves_each_edge_by_its_fraction_of_the_box():
    box = boxes([10, 20, 30, 60, 0.95])  # 20 x 40, with a score column
    offsets = torch.tensor([[0.1, -0.25, 0.5, 0.0]])
    torch.testing.assert_close(_regress(box, offsets), boxes([12, 10, 40, 60]))
