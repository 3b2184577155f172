"""Miniature copies of the public audio-visual deepfake datasets, for tests of ``prepare``.

Each ``make_*`` writes, under the folder it is given, a tree laid out as the real dataset is
(folder names, metadata files and their quirks, such as the trailing comma of FakeAVCeleb's CSV
header) holding a few tiny synthetic clips, and returns the dataset root to hand to
``mmdeepfake prepare``. Every clip is a real, decodable video with a face in view and a voice
(one encoding for the real clips, one for the fakes, reused, so a tree takes well under a second
once the two are made); with ``broken=True`` one more entry, labelled like the others, points
to a file that is not a video, which preparation must count and skip.

``identities`` people with ``clips_per_identity`` clips each (per category for FakeAVCeleb);
what each dataset's metadata says about them is in each function's docstring, so tests can
state the expected labels by hand.
"""

from __future__ import annotations

import functools
import json
import tempfile
from pathlib import Path

import numpy as np

from mmdeepfake.testing.media import face_frames, voice_like, write_video

__all__ = [
    "BROKEN_VIDEO",
    "MODIFICATIONS",
    "avdeepfake1m_source",
    "dfdc_name",
    "fakeavceleb_identity",
    "make_avdeepfake1m",
    "make_dfdc",
    "make_fakeavceleb",
    "make_lavdf",
]

#: What the broken file holds: the start of an mp4 header and nothing a decoder can use.
BROKEN_VIDEO = b"\x00\x00\x00\x18ftypisom" + b"\x00not a video" * 64

_SECONDS = 1.0
_FPS = 8
_SIZE = (160, 120)


@functools.cache
def _clip_bytes(fake: bool) -> bytes:
    """An encoded clip: the face photo over a moving background, voice; mirrored for fakes."""
    frames = face_frames(round(_SECONDS * _FPS), _SIZE)
    if fake:
        frames = np.ascontiguousarray(frames[:, :, ::-1])
    voice = voice_like(_SECONDS, seed=1 if fake else 0)
    with tempfile.TemporaryDirectory() as folder:
        path = write_video(Path(folder, "clip.mp4"), frames, fps=_FPS, audio=voice)
        return path.read_bytes()


def _write(path: Path, *, fake: bool, broken: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(BROKEN_VIDEO if broken else _clip_bytes(fake))


# --- FakeAVCeleb v1.2 ----------------------------------------------------------------------------

_FAKEAVCELEB_FOLDERS = {
    "A": ("RealVideo-RealAudio", "real"),
    "B": ("RealVideo-FakeAudio", "rtvc"),
    "C": ("FakeVideo-RealAudio", "faceswap-wav2lip"),
    "D": ("FakeVideo-FakeAudio", "fsgan-wav2lip"),
}
_PEOPLE = [
    ("African", "men"),
    ("Asian (East)", "women"),
    ("Caucasian (American)", "men"),
    ("Asian (South)", "women"),
]


def fakeavceleb_identity(index: int) -> str:
    """The identity folder of person ``index``: ``id00076``, ``id00083``, ..."""
    return f"id{76 + 7 * index:05d}"


def make_fakeavceleb(
    root: Path, *, identities: int = 4, clips_per_identity: int = 2, broken: bool = True
) -> Path:
    """``root/FakeAVCeleb_v1.2``: the four category folders and ``meta_data.csv``.

    Person ``i`` (``fakeavceleb_identity(i)``, race and gender cycling through African/men,
    Asian (East)/women, Caucasian (American)/men, Asian (South)/women) has, with ``n = 109 +
    10 i``, in each category folder ``clips_per_identity`` videos: A ``{n+j}.mp4``, B
    ``{n+j}_fake.mp4``, C ``{n+j}_{next person's id}_wavtolip.mp4`` (another person's id in
    the name, as the real fakes have), D ``{n}.mp4`` then ``{n}_3.mp4``, ``{n}_4.mp4``... (so
    person 0 has both ``00109`` and ``00109_3``). Every video has its CSV row except person 0's
    first B video, whose labels come from its folders alone. With ``broken``, person 0's D
    folder also holds ``{n}_9.mp4``, listed in the CSV, that is not a video.
    """
    dataset = Path(root) / "FakeAVCeleb_v1.2"
    lines = ["source,target1,target2,method,category,type,race,gender,path,"]
    for i in range(identities):
        person = fakeavceleb_identity(i)
        other = fakeavceleb_identity((i + 1) % identities)
        race, gender = _PEOPLE[i % len(_PEOPLE)]
        base = 109 + 10 * i
        for category, (folder, method) in _FAKEAVCELEB_FOLDERS.items():
            names = [_fakeavceleb_name(category, base, j, other) for j in range(clips_per_identity)]
            unreadable = f"{base:05d}_9.mp4" if broken and i == 0 and category == "D" else None
            for name in names + ([unreadable] if unreadable else []):
                where = dataset / folder / race / gender / person / name
                _write(where, fake=category != "A", broken=name == unreadable)
                if i == 0 and category == "B" and name == names[0]:
                    continue  # no CSV row: read from the folder names
                target = "-" if category == "A" else other
                lines.append(
                    f"{person},{target},-,{method},{category},{folder},{race},{gender},{name},"
                    f"FakeAVCeleb/{folder}/{race}/{gender}/{person}"
                )
    (dataset / "meta_data.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return dataset


def _fakeavceleb_name(category: str, base: int, j: int, other: str) -> str:
    if category == "A":
        return f"{base + j:05d}.mp4"
    if category == "B":
        return f"{base + j:05d}_fake.mp4"
    if category == "C":
        return f"{base + j:05d}_{other}_wavtolip.mp4"
    return f"{base:05d}.mp4" if j == 0 else f"{base:05d}_{j + 2}.mp4"


# --- DFDC ----------------------------------------------------------------------------------------


def dfdc_name(index: int, variant: int = 0) -> str:
    """A DFDC-like 10-letter video name; variant 0 is person ``index``'s real video."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    return (
        "".join(letters[(index * 7 + variant * 3 + k * 5) % 26] for k in range(9))
        + letters[variant]
    )


def make_dfdc(
    root: Path, *, identities: int = 4, clips_per_identity: int = 2, broken: bool = True
) -> Path:
    """``root/dfdc``: ``dfdc_train_part_0`` and ``_1``, each with videos and ``metadata.json``.

    Person ``i`` lives in part ``i % 2``: a REAL video ``dfdc_name(i)`` (``original`` null)
    and ``clips_per_identity - 1`` FAKE ones ``dfdc_name(i, v)`` whose ``original`` is the real
    one; all ``split`` ``train``. With ``broken``, part 0 also lists a FAKE
    ``dfdc_name(0, 25)`` made from person 0's real video that is not a video.
    """
    dataset = Path(root) / "dfdc"
    parts: list[dict[str, dict[str, object]]] = [{}, {}]
    for i in range(identities):
        part = parts[i % 2]
        folder = dataset / f"dfdc_train_part_{i % 2}"
        real = f"{dfdc_name(i)}.mp4"
        part[real] = {"label": "REAL", "split": "train", "original": None}
        _write(folder / real, fake=False)
        for v in range(1, clips_per_identity):
            name = f"{dfdc_name(i, v)}.mp4"
            part[name] = {"label": "FAKE", "split": "train", "original": real}
            _write(folder / name, fake=True)
    if broken:
        name = f"{dfdc_name(0, 25)}.mp4"
        parts[0][name] = {"label": "FAKE", "split": "train", "original": f"{dfdc_name(0)}.mp4"}
        _write(dataset / "dfdc_train_part_0" / name, fake=True, broken=True)
    for number, metadata in enumerate(parts):
        folder = dataset / f"dfdc_train_part_{number}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "metadata.json").write_text(json.dumps(metadata), encoding="utf-8")
    return dataset


# --- LAV-DF and AV-Deepfake1M --------------------------------------------------------------------

#: what fake number ``v`` (1, 2, 3, ...) of a person modifies: (video, audio), cycling
MODIFICATIONS = [(True, False), (False, True), (True, True)]
_LAVDF_SPLITS = ["train", "train", "dev", "test"]


def _fake_periods(visual: bool, audio: bool) -> list[list[float]]:
    return [[0.25, 0.625]] if visual or audio else []


def make_lavdf(
    root: Path, *, identities: int = 4, clips_per_identity: int = 2, broken: bool = True
) -> Path:
    """``root/LAV-DF``: ``train/``, ``dev/``, ``test/`` and ``metadata.json`` (+ ``.min``).

    Person ``i`` is in split ``train, train, dev, test`` (cycling) and has videos numbered on
    from ``000000`` across the dataset: first a real one (``original`` null), then fakes of it
    modifying (video, audio) as :data:`MODIFICATIONS` cycles. With ``broken``, the last entry
    is one more fake of person 0, in train, that is not a video.
    """
    dataset = Path(root) / "LAV-DF"
    entries: list[dict[str, object]] = []
    for i in range(identities):
        split = _LAVDF_SPLITS[i % len(_LAVDF_SPLITS)]
        real = f"{split}/{len(entries):06d}.mp4"
        for v in range(clips_per_identity):
            visual, audio = MODIFICATIONS[(v - 1) % 3] if v else (False, False)
            file = real if v == 0 else f"{split}/{len(entries):06d}.mp4"
            entries.append(_lavdf_entry(file, split, real if v else None, visual, audio))
            _write(dataset / file, fake=bool(v))
    if broken:
        file = f"train/{len(entries):06d}.mp4"
        entries.append(_lavdf_entry(file, "train", "train/000000.mp4", True, False))
        _write(dataset / file, fake=True, broken=True)
    (dataset / "metadata.json").write_text(json.dumps(entries), encoding="utf-8")
    minimal = [
        {
            k: e[k]
            for k in (
                "file",
                "split",
                "original",
                "modify_video",
                "modify_audio",
                "fake_periods",
                "n_fakes",
                "duration",
            )
        }
        for e in entries
    ]
    (dataset / "metadata.min.json").write_text(json.dumps(minimal), encoding="utf-8")
    return dataset


def _lavdf_entry(
    file: str, split: str, original: str | None, visual: bool, audio: bool
) -> dict[str, object]:
    periods = _fake_periods(visual, audio)
    return {
        "file": file,
        "n_fakes": len(periods),
        "fake_periods": periods,
        "timestamps": [],
        "duration": _SECONDS,
        "transcript": "",
        "original": original,
        "modify_video": visual,
        "modify_audio": audio,
        "split": split,
        "video_frames": round(_SECONDS * _FPS),
        "audio_channels": 1,
        "audio_frames": round(_SECONDS * 16000),
    }


_AVDF1M_FILES = {
    (False, False): ("real", "real.mp4"),
    (True, False): ("visual_modified", "fake_video_real_audio.mp4"),
    (False, True): ("audio_modified", "real_video_fake_audio.mp4"),
    (True, True): ("both_modified", "fake_video_fake_audio.mp4"),
}


def avdeepfake1m_source(index: int) -> str:
    """Person ``index``'s source clip folder: VoxCeleb2 for even, LRS3 for odd indices."""
    if index % 2 == 0:
        return f"vox_celeb_2/id{10 + index:05d}/yt{index:08d}/00001"
    return f"lrs3/yt{index:08d}/00001"


def make_avdeepfake1m(
    root: Path, *, identities: int = 4, clips_per_identity: int = 2, broken: bool = True
) -> Path:
    """``root/AV-Deepfake1M``: ``train/``, ``val/``, ``test/``, their metadata, test list.

    Person ``i`` is in ``val`` when it is the last of several, else in ``train``, with the
    videos of :func:`avdeepfake1m_source` ``(i)``: ``real.mp4`` then fakes named by what they
    modify (:data:`MODIFICATIONS` cycling, e.g. ``fake_video_real_audio.mp4``), each with its
    ``modify_type``. ``test/`` holds one unlabelled video listed in ``test_files.txt``. With
    ``broken``, train also lists ``<person 0's source>/../00002/real.mp4``, not a video.
    """
    dataset = Path(root) / "AV-Deepfake1M"
    metadata: dict[str, list[dict[str, object]]] = {"train": [], "val": []}
    for i in range(identities):
        subset = "val" if identities > 1 and i == identities - 1 else "train"
        source = avdeepfake1m_source(i)
        for v in range(clips_per_identity):
            modified = MODIFICATIONS[(v - 1) % 3] if v else (False, False)
            file = f"{source}/{_AVDF1M_FILES[modified][1]}"
            metadata[subset].append(_avdf1m_entry(file, subset, f"{source}/real.mp4", modified))
            _write(dataset / subset / file, fake=bool(v))
    if broken:
        file = f"{avdeepfake1m_source(0).rsplit('/', 1)[0]}/00002/real.mp4"
        metadata["train"].append(_avdf1m_entry(file, "train", file, (False, False)))
        _write(dataset / "train" / file, fake=False, broken=True)
    for subset, entries in metadata.items():
        text = json.dumps(entries)
        (dataset / f"{subset}_metadata.json").write_text(text, encoding="utf-8")
    _write(dataset / "test" / "lrs3" / "ytunknown" / "00001" / "clip.mp4", fake=False)
    (dataset / "test_files.txt").write_text("lrs3/ytunknown/00001/clip.mp4\n", encoding="utf-8")
    return dataset


def _avdf1m_entry(
    file: str, subset: str, original: str, modified: tuple[bool, bool]
) -> dict[str, object]:
    visual, audio = modified
    periods = _fake_periods(visual, audio)
    return {
        "file": file,
        "original": None if modified == (False, False) else original,
        "split": subset,
        "modify_type": _AVDF1M_FILES[modified][0],
        "audio_model": "vits" if audio else "",
        "fake_segments": periods,
        "visual_fake_segments": periods if visual else [],
        "audio_fake_segments": periods if audio else [],
        "video_frames": round(_SECONDS * _FPS),
        "audio_frames": round(_SECONDS * 16000),
    }
