#!/usr/bin/env python3
"""What the FER2013 face-emotion prior reads: two real photographs, then synthetic drawn faces.

Real photographs (matplotlib's ``grace_hopper.jpg``, scikit-image's ``astronaut``): the face
detector's box, cropped at several margins (the crop is a square ``1 + margin`` times the box's
longer side), shows how much the prior's reading depends on framing. Synthetic faces
(``mmdeepfake-synth``, consistency variant, one frame per clip, an unseen seed): accuracy per
emotion of the frozen prior at the default and at its own margin, and what it mistakes each
emotion for. Needs the dev extra (matplotlib, scikit-image). Run from the repository root:

    python scripts/fer_readings.py --clips 140
"""

from __future__ import annotations

import argparse
import collections
import csv
import tempfile
from pathlib import Path

import numpy as np
import torch

from mmdeepfake.encoders import create_encoder
from mmdeepfake.encoders.fer2013 import FER2013_FACE_MARGIN
from mmdeepfake.labels import EMOTIONS
from mmdeepfake.media import faces, features
from mmdeepfake.media.decode import load_image

MARGINS = (0.0, faces.FACE_MARGIN, FER2013_FACE_MARGIN, 0.6)


def photos() -> dict[str, np.ndarray]:
    from matplotlib import cbook
    from PIL import Image
    from skimage import data

    with cbook.get_sample_data("grace_hopper.jpg") as handle:
        hopper = np.asarray(Image.open(handle).convert("RGB"))
    return {"astronaut": np.ascontiguousarray(data.astronaut()), "grace_hopper": hopper}


def read(encoder, crop: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return encoder(features.faces_to_tensor(crop)).emotion_logits.softmax(-1)[0].numpy()


def real_faces(encoder, detector: faces.FaceDetector) -> None:
    for name, image in photos().items():
        box = detector.detect([image], track=False)[0]
        print(f"{name}: detector box {box.width:.0f}x{box.height:.0f} px")
        for margin in MARGINS:
            p = read(encoder, faces.crop_faces([image], [box], margin=margin))
            top = np.argsort(p)[::-1][:2]
            print(f"  margin {margin:.2f}: " + ", ".join(f"{EMOTIONS[i]} {p[i]:.2f}" for i in top))


def synthetic_faces(encoder, detector: faces.FaceDetector, clips: int, seed: int) -> None:
    from mmdeepfake.data.storage import open_storage
    from mmdeepfake.data.synth import generate_dataset

    with tempfile.TemporaryDirectory(prefix="fer-readings-") as tmp:
        root = Path(tmp)
        generate_dataset(
            open_storage(root),
            clips=clips,
            seed=seed,
            variant="consistency",
            frames_per_clip=1,
            splits=(0.0, 0.0, 1.0),
        )
        with open(root / "labels" / "emotions.csv", newline="") as handle:
            rows = [(k, e) for k, e in list(csv.reader(handle))[1:] if k.startswith("frames/")]
        images = [(load_image((root / key).read_bytes()), emotion) for key, emotion in rows]
    for margin in (faces.FACE_MARGIN, FER2013_FACE_MARGIN):
        confusion: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        detected = 0
        for image, emotion in images:
            crop, found = faces.crop_main_face(image, detector=detector, margin=margin)
            detected += found
            confusion[emotion][EMOTIONS[int(np.argmax(read(encoder, crop)))]] += 1
        hits = sum(confusion[e][e] for e in EMOTIONS)
        print(
            f"synthetic faces, margin {margin:.2f}: {detected}/{len(images)} detected, "
            f"accuracy {hits / len(images):.3f} (chance {1 / len(EMOTIONS):.3f})"
        )
        for emotion in EMOTIONS:
            total = sum(confusion[emotion].values())
            common = ", ".join(f"{p} {n}" for p, n in confusion[emotion].most_common(2))
            print(f"  {emotion:9s} {confusion[emotion][emotion]:3d}/{total:<3d} read as: {common}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=140, help="synthetic clips (0: skip them)")
    parser.add_argument("--seed", type=int, default=20_240_917)
    args = parser.parse_args()
    encoder = create_encoder("fer2013").eval()
    detector = faces.FaceDetector.shared()
    real_faces(encoder, detector)
    if args.clips:
        synthetic_faces(encoder, detector, args.clips, args.seed)


if __name__ == "__main__":
    main()
