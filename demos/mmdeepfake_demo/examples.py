"""Examples ready to click: synthetic real and fake clips, and a real photograph with a voice.

The synthetic clips are generated at the first start (half a minute on two cores; later starts
reuse them) with the generator that made the starter model's training data, so no video is
stored in the repository: a *real* clip shows one emotion on the face and in the voice, a
*fake* one pairs different emotions. The photograph is Grace Hopper's portrait from
matplotlib's sample data (a real photograph, public domain). No human speech recording can be
shipped or downloaded here, so the voice that goes with it is synthesised speech (eSpeak NG, see
``demos/assets/``).
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

ASSETS = Path(__file__).resolve().parent.parent / "assets"
VOICE_ASSET = ASSETS / "voice_en.flac"
CLIP_SECONDS = 4.0

# (file stem, face emotion, voice emotion, seed, caption)
SYNTHETIC_CLIPS = (
    ("synthetic_real_happy", "happy", "happy", 1, "synthetic REAL: happy face, happy voice"),
    ("synthetic_real_sad", "sad", "sad", 2, "synthetic REAL: sad face, sad voice"),
    ("synthetic_fake_happy_angry", "happy", "angry", 3, "synthetic FAKE: happy face, angry voice"),
    (
        "synthetic_fake_sad_surprised",
        "sad",
        "surprised",
        4,
        "synthetic FAKE: sad face, surprised voice",
    ),
)
PAIR_CAPTION = "real photograph (Grace Hopper) + synthesised English speech (eSpeak NG)"


@dataclass(frozen=True)
class ExampleSet:
    """Paths of the example media and the captions the page shows for them."""

    videos: list[str]
    video_captions: list[str]
    pairs: list[tuple[str, str]]
    pair_captions: list[str]


def default_folder() -> Path:
    """Where the examples are kept between runs, so a restart does not generate them again."""
    from mmdeepfake import __version__

    return Path(tempfile.gettempdir()) / f"mmdeepfake-demo-examples-{__version__}"


def prepare_examples(folder: str | Path) -> ExampleSet:
    """Write the example media into ``folder`` (created if needed) and describe them.

    Files already there are reused; the clips are deterministic (fixed seeds).
    """
    from mmdeepfake.data.synth import make_clip

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    videos, captions = [], []
    for stem, face, voice, seed, caption in SYNTHETIC_CLIPS:
        path = folder / f"{stem}.mp4"
        if not path.is_file():  # written under another name first: no half-written examples
            partial = make_clip(
                path.with_suffix(".partial.mp4"), face, voice, seed=seed, seconds=CLIP_SECONDS
            )
            partial.replace(path)
        videos.append(str(path))
        captions.append(caption)
    photo = folder / "grace_hopper.jpg"
    if not photo.is_file():
        from matplotlib import cbook

        with cbook.get_sample_data("grace_hopper.jpg") as handle:
            photo.write_bytes(handle.read())
    voice = folder / VOICE_ASSET.name
    if not voice.is_file():
        shutil.copyfile(VOICE_ASSET, voice)
    return ExampleSet(videos, captions, [(str(photo), str(voice))], [PAIR_CAPTION])
