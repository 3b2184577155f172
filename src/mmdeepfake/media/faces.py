"""Face detection and face crops: an MTCNN cascade (P-Net, R-Net, O-Net) written for batches.

The networks are the three stages of Zhang et al. (2016), "Joint Face Detection and Alignment
using Multi-task Cascaded Convolutional Networks", with parameter names that match the
pretrained weights shipped inside the facenet-pytorch wheel (`facenet_pytorch/data/*.pt`). Only
those files are read: facenet-pytorch itself is never imported (it needs torchvision, which this
project does not use), and its weights load with `torch.load(weights_only=True)`.

Speed comes from doing little: frames are downscaled so their longer side is `detect_side`
pixels before detection (boxes are mapped back to the original frame), all frames of a call go
through each stage together as one batch, and non-maximum suppression is a small torch routine.
"""

from __future__ import annotations

import importlib.util
import math
import pickle
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from mmdeepfake.errors import CheckpointError

if TYPE_CHECKING:
    import torch

INSTALL_HINT = "pip install --no-deps facenet-pytorch==2.6.0"
#: Default framing of a face crop: a square 1.25 times the detector box's longer side. An image
#: encoder trained on other framing declares its own (``EmotionEncoder.face_margin``).
FACE_MARGIN = 0.25
#: The cascade's default settings (see FaceDetector); a model carries its own in
#: ``PreprocessConfig``, whose defaults these are.
MIN_FACE_SIZE = 40
STAGE_THRESHOLDS = (0.6, 0.7, 0.7)
DETECT_SIDE = 320
SCALE_FACTOR = 0.709


@dataclass(frozen=True)
class FaceBox:
    """A face in pixel coordinates of the original frame (x to the right, y down) and its score."""

    x1: float
    y1: float
    x2: float
    y2: float
    score: float

    @property
    def width(self) -> float:
        return self.x2 - self.x1

    @property
    def height(self) -> float:
        return self.y2 - self.y1

    def to_dict(self) -> dict[str, float]:
        return {k: round(float(v), 2 if k != "score" else 4) for k, v in asdict(self).items()}


def mtcnn_weights_dir() -> Path:
    """The folder holding pnet.pt/rnet.pt/onet.pt in an installed facenet-pytorch wheel.

    Found with importlib's spec lookup, which does not execute the package.
    """
    spec = importlib.util.find_spec("facenet_pytorch")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        folder = Path(location) / "data"
        if all((folder / f"{name}.pt").is_file() for name in ("pnet", "rnet", "onet")):
            return folder
    raise CheckpointError(
        "The face detector needs the MTCNN weights shipped with facenet-pytorch, which is not "
        f"installed. Install it without its dependencies: `{INSTALL_HINT}`."
    )


def _build_networks():
    """P-Net, R-Net and O-Net as torch modules (built lazily so importing this file is cheap)."""
    from torch import nn

    class PNet(nn.Module):
        """Proposal network: fully convolutional, a face score and box offsets per 12x12 cell."""

        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(3, 10, kernel_size=3)
            self.prelu1 = nn.PReLU(10)
            self.pool1 = nn.MaxPool2d(2, 2, ceil_mode=True)
            self.conv2 = nn.Conv2d(10, 16, kernel_size=3)
            self.prelu2 = nn.PReLU(16)
            self.conv3 = nn.Conv2d(16, 32, kernel_size=3)
            self.prelu3 = nn.PReLU(32)
            self.conv4_1 = nn.Conv2d(32, 2, kernel_size=1)
            self.conv4_2 = nn.Conv2d(32, 4, kernel_size=1)

        def forward(self, x):
            x = self.pool1(self.prelu1(self.conv1(x)))
            x = self.prelu3(self.conv3(self.prelu2(self.conv2(x))))
            return self.conv4_2(x), self.conv4_1(x).softmax(dim=1)[:, 1]

    class RNet(nn.Module):
        """Refinement network on 24x24 candidate crops."""

        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(3, 28, kernel_size=3)
            self.prelu1 = nn.PReLU(28)
            self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
            self.conv2 = nn.Conv2d(28, 48, kernel_size=3)
            self.prelu2 = nn.PReLU(48)
            self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
            self.conv3 = nn.Conv2d(48, 64, kernel_size=2)
            self.prelu3 = nn.PReLU(64)
            self.dense4 = nn.Linear(576, 128)
            self.prelu4 = nn.PReLU(128)
            self.dense5_1 = nn.Linear(128, 2)
            self.dense5_2 = nn.Linear(128, 4)

        def forward(self, x):
            x = self.pool1(self.prelu1(self.conv1(x)))
            x = self.pool2(self.prelu2(self.conv2(x)))
            x = self.prelu3(self.conv3(x))
            # The pretrained dense layer expects (W, H, C) flattening order (Caffe heritage).
            x = self.prelu4(self.dense4(x.permute(0, 3, 2, 1).reshape(x.shape[0], -1)))
            return self.dense5_2(x), self.dense5_1(x).softmax(dim=1)[:, 1]

    class ONet(nn.Module):
        """Output network on 48x48 crops: final score, box offsets (and 5 landmarks, unused)."""

        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(3, 32, kernel_size=3)
            self.prelu1 = nn.PReLU(32)
            self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
            self.conv2 = nn.Conv2d(32, 64, kernel_size=3)
            self.prelu2 = nn.PReLU(64)
            self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
            self.conv3 = nn.Conv2d(64, 64, kernel_size=3)
            self.prelu3 = nn.PReLU(64)
            self.pool3 = nn.MaxPool2d(2, 2, ceil_mode=True)
            self.conv4 = nn.Conv2d(64, 128, kernel_size=2)
            self.prelu4 = nn.PReLU(128)
            self.dense5 = nn.Linear(1152, 256)
            self.prelu5 = nn.PReLU(256)
            self.dense6_1 = nn.Linear(256, 2)
            self.dense6_2 = nn.Linear(256, 4)
            self.dense6_3 = nn.Linear(256, 10)

        def forward(self, x):
            x = self.pool1(self.prelu1(self.conv1(x)))
            x = self.pool2(self.prelu2(self.conv2(x)))
            x = self.pool3(self.prelu3(self.conv3(x)))
            x = self.prelu4(self.conv4(x))
            x = self.prelu5(self.dense5(x.permute(0, 3, 2, 1).reshape(x.shape[0], -1)))
            return self.dense6_2(x), self.dense6_1(x).softmax(dim=1)[:, 1]

    return PNet(), RNet(), ONet()


# --- box utilities (torch only) ------------------------------------------------------------------


def box_iou(a: torch.Tensor, b: torch.Tensor, mode: str = "union") -> torch.Tensor:
    """Pairwise overlap of (N,4) and (M,4) boxes: intersection over union, or over the smaller."""
    import torch

    lt = torch.maximum(a[:, None, :2], b[None, :, :2])
    rb = torch.minimum(a[:, None, 2:4], b[None, :, 2:4])
    inter = (rb - lt).clamp(min=0).prod(dim=2)
    area_a = (a[:, 2] - a[:, 0]).clamp(min=0) * (a[:, 3] - a[:, 1]).clamp(min=0)
    area_b = (b[:, 2] - b[:, 0]).clamp(min=0) * (b[:, 3] - b[:, 1]).clamp(min=0)
    if mode == "min":
        denom = torch.minimum(area_a[:, None], area_b[None, :])
    else:
        denom = area_a[:, None] + area_b[None, :] - inter
    return inter / denom.clamp(min=1e-9)


def nms(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    threshold: float,
    groups: torch.Tensor | None = None,
    mode: str = "union",
) -> torch.Tensor:
    """Greedy non-maximum suppression; indices kept, best score first.

    Boxes in different `groups` (e.g. different images) never suppress each other: they are
    shifted apart by a group-dependent offset first, as in torchvision's batched_nms.
    """
    import torch

    if boxes.numel() == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    if groups is not None:
        offset = boxes[:, :4].max() + 1
        boxes = boxes[:, :4] + (groups.to(boxes.dtype) * offset)[:, None]
    order = scores.argsort(descending=True)
    overlap = (box_iou(boxes[order], boxes[order], mode) > threshold).cpu().numpy()
    suppressed = np.zeros(len(order), dtype=bool)
    keep = []
    for i in range(len(order)):
        if suppressed[i]:
            continue
        keep.append(i)
        suppressed |= overlap[i]
    return order[torch.as_tensor(keep, dtype=torch.long, device=order.device)]


def _square(boxes: torch.Tensor) -> torch.Tensor:
    """Grow each (x1,y1,x2,y2) box to the square of its longer side around the same centre."""
    import torch

    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    side = torch.maximum(w, h)
    cx, cy = boxes[:, 0] + w / 2, boxes[:, 1] + h / 2
    return torch.stack([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2], dim=1)


def _regress(boxes: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """Apply the networks' box offsets (fractions of the box size)."""
    import torch

    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    size = torch.stack([w, h, w, h], dim=1)
    return boxes[:, :4] + offsets * size


# --- the detector ---------------------------------------------------------------------------------


class FaceDetector:
    """Batched MTCNN face detector returning the main face of each frame.

    Args:
        min_face_size: smallest face looked for, in pixels of the original frame. Faces below
            12 pixels at detection scale cannot be found, whatever this says.
        thresholds: score thresholds of the P-, R- and O-Net stages.
        detect_side: frames are downscaled so their longer side is at most this many pixels
            before detection. 320 finds faces down to about 1/25 of the frame's longer side.
        device: torch device of the networks.
        weights_dir: folder with pnet.pt/rnet.pt/onet.pt (default: the facenet-pytorch wheel).
        redetect_every: when tracking (see `detect`), the full cascade runs on every n-th frame.
        num_threads: torch intra-op threads while detecting (None: leave the setting alone).
            The cascade is hundreds of small operations: a second thread makes it only about
            1.5x faster on an idle 2-core CPU, but 10-20x slower when other processes keep the
            cores busy (each operation then waits for a descheduled thread), hence 1.
    """

    _shared: ClassVar[dict[tuple, FaceDetector]] = {}
    _shared_lock = threading.Lock()

    def __init__(
        self,
        min_face_size: int = MIN_FACE_SIZE,
        thresholds: tuple[float, float, float] = STAGE_THRESHOLDS,
        detect_side: int = DETECT_SIDE,
        device: str = "cpu",
        factor: float = SCALE_FACTOR,
        weights_dir: str | Path | None = None,
        redetect_every: int = 8,
        num_threads: int | None = 1,
    ) -> None:
        import torch

        self.min_face_size = min_face_size
        self.thresholds = tuple(float(t) for t in thresholds)
        self.detect_side = int(detect_side)
        self.factor = factor
        self.redetect_every = max(1, int(redetect_every))
        self.device = torch.device(device)
        self.num_threads = num_threads
        folder = Path(weights_dir) if weights_dir is not None else mtcnn_weights_dir()
        # The random initial weights are replaced below; drawing them from a forked RNG leaves
        # the caller's stream untouched, so a training run draws the same dropout masks whether
        # or not its process had built a face detector before (a resumed run relies on it).
        with torch.random.fork_rng(devices=[]):
            self.pnet, self.rnet, self.onet = _build_networks()
        for name, net in (("pnet", self.pnet), ("rnet", self.rnet), ("onet", self.onet)):
            path = folder / f"{name}.pt"
            try:
                state = torch.load(path, map_location="cpu", weights_only=True)
                net.load_state_dict(state)
            except FileNotFoundError:
                raise CheckpointError(
                    f"MTCNN weights {path} are missing. Reinstall them: `{INSTALL_HINT}`."
                ) from None
            except (RuntimeError, ValueError, OSError, EOFError, pickle.UnpicklingError) as exc:
                raise CheckpointError(
                    f"MTCNN weights {path} cannot be loaded ({exc}). Reinstall them: "
                    f"`{INSTALL_HINT}`."
                ) from None
            net.to(self.device).eval().requires_grad_(False)
            # Channels-last runs these small convolutions and max-pools several times faster.
            net.to(memory_format=torch.channels_last)

    @classmethod
    def shared(
        cls,
        device: str | torch.device = "cpu",
        *,
        min_face_size: int = MIN_FACE_SIZE,
        thresholds: tuple[float, float, float] = STAGE_THRESHOLDS,
        detect_side: int = DETECT_SIDE,
        factor: float = SCALE_FACTOR,
    ) -> FaceDetector:
        """A process-wide detector with these settings on `device`, built on first use (one
        per device and settings: a model saved with its own settings gets its own)."""
        low, mid, high = (float(t) for t in thresholds)
        key = (str(device), int(min_face_size), (low, mid, high), int(detect_side), float(factor))
        with cls._shared_lock:
            if key not in cls._shared:
                cls._shared[key] = cls(
                    min_face_size=key[1],
                    thresholds=key[2],
                    detect_side=key[3],
                    device=key[0],
                    factor=key[4],
                )
            return cls._shared[key]

    def detect(self, frames: Sequence[np.ndarray], *, track: bool = True) -> list[FaceBox | None]:
        """The main face (largest, weighted by score) of each (H,W,3) uint8 RGB frame, or None.

        Frames of equal size go through the cascade together. With `track` (for frames of one
        video, in time order) the full cascade runs only on every `redetect_every`-th frame;
        the others are searched only around the faces of the nearest such frame, by R-Net and
        O-Net, and fall back to the full cascade when nothing is confirmed there. Pass
        track=False for unrelated images of the same size.
        """
        results: list[FaceBox | None] = [None] * len(frames)
        for indices in self._group_by_shape(frames):
            batch = (
                frames if isinstance(frames, np.ndarray) else np.stack([frames[i] for i in indices])
            )
            found = self._detect_in_parts(batch, track)
            for i, faces in zip(indices, found):
                results[i] = max(faces, key=_prominence) if faces else None
        return results

    def detect_all(self, frames: Sequence[np.ndarray]) -> list[list[FaceBox]]:
        """Every face found in each frame (full cascade on every frame), most prominent first."""
        results: list[list[FaceBox]] = [[] for _ in frames]
        for indices in self._group_by_shape(frames):
            found = self._detect_in_parts(np.stack([frames[i] for i in indices]), track=False)
            for i, faces in zip(indices, found):
                results[i] = sorted(faces, key=_prominence, reverse=True)
        return results

    @staticmethod
    def _group_by_shape(frames: Sequence[np.ndarray]) -> list[list[int]]:
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, frame in enumerate(frames):
            if frame.ndim != 3 or frame.shape[2] != 3:
                raise ValueError(f"frames must be (H,W,3) uint8 RGB; got shape {frame.shape}")
            groups.setdefault(frame.shape, []).append(i)
        return list(groups.values())

    # -- the cascade --

    def _downscale(self, frames: np.ndarray) -> tuple[torch.Tensor, float]:
        """(B,3,h,w) float tensor with the longer side at most detect_side, and the scale used."""
        import torch
        import torch.nn.functional as F

        height, width = frames.shape[1:3]
        scale = min(1.0, self.detect_side / max(height, width))
        if not frames.flags.writeable:
            frames = frames.copy()
        x = torch.from_numpy(frames).to(self.device).permute(0, 3, 1, 2)
        if scale < 1.0:
            size = (max(1, round(height * scale)), max(1, round(width * scale)))
            # Anti-aliased uint8 resize straight from channels-last memory: no full-size float copy.
            x = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
            scale = size[0] / height
        return x.float().contiguous(memory_format=torch.channels_last), scale

    def _detect_in_parts(self, frames: np.ndarray, track: bool) -> list[list[FaceBox]]:
        """`_detect_batch` on two halves of the frames at once, one on a helper thread.

        The cascade is single-threaded (see `num_threads`), so on CPU the halves go to two cores
        when the caller allows torch two or more threads. Each frame's faces depend only on that
        frame and, when tracking, on its nearest anchor frame, so a half holds whole anchors with
        the frames tracked from them and the result is the same as in one batch.
        """
        import torch

        from mmdeepfake.threads import may_overlap, run_alongside, torch_threads

        anchors = self._anchors(len(frames), track)
        cut = self._split_point(len(frames), anchors)
        caller_threads = torch.get_num_threads()

        def detect(start: int, end: int) -> list[list[FaceBox]]:
            mine = [a - start for a in anchors if start <= a < end]
            limit = torch_threads(self.num_threads, self.device, restore=caller_threads)
            with limit, torch.inference_mode():
                return self._detect_batch(frames[start:end], mine)

        if cut is None or not may_overlap(self.device) or self.device.type != "cpu":
            return detect(0, len(frames))
        first, second = run_alongside(lambda: detect(cut, len(frames)), lambda: detect(0, cut))
        return first + second

    def _anchors(self, count: int, track: bool) -> list[int]:
        """Frames that go through the full cascade: every `redetect_every`-th, or all of them."""
        step = self.redetect_every if track else 1
        return list(range(0, count, step))

    @staticmethod
    def _nearest(frame: int, anchors: list[int]) -> int:
        return min(anchors, key=lambda a: abs(a - frame))

    def _split_point(self, count: int, anchors: list[int]) -> int | None:
        """First frame of the second half: the halves split the anchors, each frame following
        its nearest anchor; None when there are fewer than two anchors."""
        if len(anchors) < 2:
            return None
        boundary = anchors[(len(anchors) + 1) // 2]
        return next(i for i in range(count) if self._nearest(i, anchors) == boundary)

    def _detect_batch(self, frames: np.ndarray, anchors: list[int]) -> list[list[FaceBox]]:
        """All faces of each frame of a same-size batch, in original pixel coordinates.

        `anchors` go through the full cascade; every other frame is searched around the faces
        of its nearest anchor and goes through the full cascade only if nothing is found there.
        """
        import torch

        images, scale = self._downscale(frames)
        count = len(frames)
        boxes, ids, scores = self._cascade(images, scale, anchors)
        others = [i for i in range(count) if i not in set(anchors)]
        if others:
            nearest = {i: self._nearest(i, anchors) for i in others}
            proposals, proposal_ids = _track_proposals(boxes, ids, nearest)
            tracked = self._verify(images, proposals, proposal_ids)
            missing = sorted(set(others) - set(tracked[1].tolist()))
            parts = [(boxes, ids, scores), tracked]
            if missing:
                parts.append(self._cascade(images, scale, missing))
            boxes, ids, scores = (torch.cat(p) for p in zip(*parts))
        boxes = boxes / scale
        full_h, full_w = frames.shape[1:3]
        boxes[:, 0::2] = boxes[:, 0::2].clamp(0, full_w)
        boxes[:, 1::2] = boxes[:, 1::2].clamp(0, full_h)
        found: list[list[FaceBox]] = [[] for _ in range(count)]
        for (x1, y1, x2, y2), image_id, score in zip(boxes.tolist(), ids.tolist(), scores.tolist()):
            if x2 - x1 >= 1 and y2 - y1 >= 1:
                found[image_id].append(FaceBox(x1, y1, x2, y2, score=score))
        return found

    def _cascade(self, images: torch.Tensor, scale: float, indices: list[int]):
        """P-Net, R-Net, O-Net on images[indices]; boxes in detection pixels, ids into images."""
        import torch

        index = torch.as_tensor(indices, dtype=torch.long, device=images.device)
        boxes, local_ids = self._stage_one(images[index], scale)
        return self._verify(images, boxes, index[local_ids])

    def _verify(self, images: torch.Tensor, boxes: torch.Tensor, image_ids: torch.Tensor):
        """R-Net then O-Net on square candidate boxes; (boxes, image ids, scores) confirmed."""
        boxes, image_ids, scores = self._refine(images, boxes, image_ids, self.rnet, 24, 1)
        if len(boxes):
            boxes = _square(boxes)
        boxes, image_ids, scores = self._refine(images, boxes, image_ids, self.onet, 48, 2)
        keep = nms(boxes, scores, 0.7, image_ids, mode="min")
        return boxes[keep], image_ids[keep], scores[keep]

    def _scales(self, height: int, width: int, downscale: float) -> list[float]:
        """Pyramid scales for P-Net; `downscale` is detection size / original size."""
        # min_face_size is in original pixels; P-Net sees 12-pixel windows at each scale.
        min_face = max(12.0, self.min_face_size * downscale)
        scale = 12.0 / min(min_face, float(min(height, width)))
        scales = []
        while min(height, width) * scale >= 12:
            scales.append(scale)
            scale *= self.factor
        return scales

    def _stage_one(self, images: torch.Tensor, downscale: float):
        """P-Net over an image pyramid: candidate boxes (K,4) and their image index (K,)."""
        import torch
        import torch.nn.functional as F

        _batch, _, height, width = images.shape
        all_boxes, all_scores, all_ids = [], [], []
        for scale in self._scales(height, width, downscale):
            size = (math.ceil(height * scale), math.ceil(width * scale))
            x = F.interpolate(
                images, size=size, mode="bilinear", antialias=True, align_corners=False
            )
            offsets, probs = self.pnet((x - 127.5) * 0.0078125)
            mask = probs >= self.thresholds[0]
            ids, ys, xs = mask.nonzero(as_tuple=True)
            if ids.numel() == 0:
                continue
            scores = probs[ids, ys, xs]
            cells = torch.stack([xs, ys], dim=1).to(images.dtype)
            real_scale_x, real_scale_y = size[1] / width, size[0] / height
            top_left = cells * 2
            boxes = torch.cat([top_left, top_left + 12], dim=1)
            boxes = boxes / torch.tensor([real_scale_x, real_scale_y] * 2, device=boxes.device)
            boxes = _regress(boxes, offsets[ids, :, ys, xs])
            keep = nms(boxes, scores, 0.5, ids)
            all_boxes.append(boxes[keep])
            all_scores.append(scores[keep])
            all_ids.append(ids[keep])
        if not all_boxes:
            empty = torch.zeros(0, 4, device=images.device)
            return empty, torch.zeros(0, dtype=torch.long, device=images.device)
        boxes, scores, ids = torch.cat(all_boxes), torch.cat(all_scores), torch.cat(all_ids)
        keep = nms(boxes, scores, 0.7, ids)
        return _square(boxes[keep]), ids[keep]

    def _refine(self, images, boxes, image_ids, net, size: int, stage: int):
        """Score crops of `boxes` with R-Net or O-Net; keep the confident ones, regressed."""
        import torch

        if len(boxes) == 0:
            return boxes, image_ids, torch.zeros(0, device=boxes.device)
        crops = _crop_batch(images, boxes, image_ids, size).contiguous(
            memory_format=torch.channels_last
        )
        offsets, scores = net((crops - 127.5) * 0.0078125)
        keep = scores > self.thresholds[stage]
        boxes, image_ids, scores, offsets = (
            boxes[keep],
            image_ids[keep],
            scores[keep],
            offsets[keep],
        )
        if stage == 1:
            order = nms(boxes, scores, 0.7, image_ids)
            boxes, image_ids, scores, offsets = (
                boxes[order],
                image_ids[order],
                scores[order],
                offsets[order],
            )
        return _regress(boxes, offsets), image_ids, scores


#: Where a face is looked for in a tracked frame, relative to its box in the nearest frame that
#: went through the full cascade: (size factor, x shift, y shift), shifts in box sizes.
_TRACK_JITTER = [
    (z, dx, dy)
    for z in (1.0, 1.25)
    for dx, dy in ((0, 0), (-0.15, 0), (0.15, 0), (0, -0.15), (0, 0.15))
]


def _track_proposals(boxes: torch.Tensor, ids: torch.Tensor, nearest: dict[int, int]):
    """Candidate boxes for tracked frames: jittered copies of their anchor frame's faces."""
    import torch

    proposals, proposal_ids = [], []
    if len(boxes):
        squares = _square(boxes)
        for frame, anchor in nearest.items():
            mine = squares[ids == anchor]
            if not len(mine):
                continue
            side = mine[:, 2] - mine[:, 0]
            cx, cy = (mine[:, 0] + mine[:, 2]) / 2, (mine[:, 1] + mine[:, 3]) / 2
            for zoom, dx, dy in _TRACK_JITTER:
                half = side * zoom / 2
                x, y = cx + dx * side, cy + dy * side
                proposals.append(torch.stack([x - half, y - half, x + half, y + half], dim=1))
                proposal_ids.append(
                    torch.full((len(mine),), frame, dtype=torch.long, device=boxes.device)
                )
    if not proposals:
        empty = torch.zeros(0, 4, device=boxes.device)
        return empty, torch.zeros(0, dtype=torch.long, device=boxes.device)
    return torch.cat(proposals), torch.cat(proposal_ids)


def _prominence(face: FaceBox) -> float:
    """The main face of a frame: the biggest, slightly weighted by confidence."""
    return face.width * face.height * face.score


def _crop_batch(
    images: torch.Tensor, boxes: torch.Tensor, image_ids: torch.Tensor, size: int
) -> torch.Tensor:
    """Bilinear size x size crops of `boxes` (pixel coords) from `images`; zeros outside."""
    import torch
    import torch.nn.functional as F

    _, channels, height, width = images.shape
    steps = (torch.arange(size, dtype=images.dtype, device=images.device) + 0.5) / size
    out = torch.empty(len(boxes), channels, size, size, dtype=images.dtype, device=images.device)
    for image_id in image_ids.unique().tolist():
        rows = (image_ids == image_id).nonzero(as_tuple=True)[0]
        b = boxes[rows]
        xs = b[:, 0:1] + steps[None] * (b[:, 2:3] - b[:, 0:1])  # (n, size) pixel centres
        ys = b[:, 1:2] + steps[None] * (b[:, 3:4] - b[:, 1:2])
        gx = xs * 2 / width - 1
        gy = ys * 2 / height - 1
        grid = torch.stack(
            [gx[:, None, :].expand(-1, size, -1), gy[:, :, None].expand(-1, -1, size)], dim=-1
        ).reshape(1, len(rows) * size, size, 2)
        sampled = F.grid_sample(
            images[image_id : image_id + 1],
            grid,
            mode="bilinear",
            padding_mode="zeros",
            align_corners=False,
        )
        out[rows] = sampled.reshape(channels, len(rows), size, size).permute(1, 0, 2, 3)
    return out


# --- crops ---------------------------------------------------------------------------------------


def crop_faces(
    frames: Sequence[np.ndarray],
    boxes: Sequence[FaceBox | None],
    *,
    size: int = 224,
    margin: float = FACE_MARGIN,
) -> np.ndarray:
    """Square face crops (N,size,size,3) uint8, one per frame.

    Each crop is the square of side max(w, h) * (1 + margin) around the box centre. Near a border
    the square is shifted to stay inside the frame; only a square larger than the frame is
    padded (black). A frame whose box is None gives its centre crop (see `center_crop_face`).
    """
    if len(frames) != len(boxes):
        raise ValueError(f"{len(frames)} frames but {len(boxes)} boxes")
    crops = np.empty((len(frames), size, size, 3), dtype=np.uint8)
    for i, (frame, box) in enumerate(zip(frames, boxes)):
        if box is None:
            crops[i] = center_crop_face(frame, size)
            continue
        side = max(box.width, box.height) * (1 + margin)
        cx, cy = (box.x1 + box.x2) / 2, (box.y1 + box.y2) / 2
        crops[i] = _square_crop(frame, cx, cy, side, size)
    return crops


def crop_main_face(
    image: np.ndarray,
    *,
    detector: FaceDetector | None = None,
    size: int = 224,
    margin: float = FACE_MARGIN,
) -> tuple[np.ndarray, bool]:
    """The crop ``predict`` would take of the most confident face, and whether one was found.

    Training crops dataset faces this way so the model sees faces framed exactly as at
    inference; an image where the detector finds nothing falls back to its central square.
    """
    box = (detector or FaceDetector.shared()).detect([image], track=False)[0]
    if box is None:
        return center_crop_face(image, size), False
    return crop_faces([image], [box], size=size, margin=margin)[0], True


def center_crop_face(image: np.ndarray, size: int = 224) -> np.ndarray:
    """The central square of an image that already shows a face, resized to (size,size,3)."""
    height, width = image.shape[:2]
    return _square_crop(image, width / 2, height / 2, min(height, width), size)


def _square_crop(frame: np.ndarray, cx: float, cy: float, side: float, size: int) -> np.ndarray:
    from PIL import Image

    height, width = frame.shape[:2]
    side = max(side, 1.0)
    pad = 0
    if side > min(height, width):
        pad = math.ceil((side - min(height, width)) / 2) + 1
        frame = np.pad(frame, ((pad, pad), (pad, pad), (0, 0)))
        height, width = frame.shape[:2]
        cx, cy = cx + pad, cy + pad
    x1 = min(max(cx - side / 2, 0.0), width - side)
    y1 = min(max(cy - side / 2, 0.0), height - side)
    image = Image.fromarray(np.ascontiguousarray(frame))
    box = (x1, y1, x1 + side, y1 + side)
    crop = image.resize((size, size), Image.Resampling.BILINEAR, box=box, reducing_gap=None)
    return np.asarray(crop, dtype=np.uint8)
