"""Typed configuration: DetectorConfig / PreprocessConfig, config.json layouts, named
architectures, and preprocessing that travels with a saved model into ``predict``."""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
import re
from importlib import resources
from pathlib import Path

import pytest
import torch

from mmdeepfake import Detector
from mmdeepfake.architectures import architecture_config, list_architectures, model_options
from mmdeepfake.config import DetectorConfig, PreprocessConfig
from mmdeepfake.config_check import FIXED_PREPROCESS, _SkipInPlace
from mmdeepfake.encoders import hf
from mmdeepfake.errors import ConfigError
from mmdeepfake.labels import EMOTIONS
from mmdeepfake.media import faces, features
from mmdeepfake.testing import media as mf
from mmdeepfake.train.config import TrainConfig
from tiny_models import TINY_ARCH

REPO = Path(__file__).resolve().parents[1]

# --- the config objects ----------------------------------------------------------------------


def test_preprocess_defaults_are_todays_constants():
    p = PreprocessConfig()
    assert (p.image_size, p.image_mean, p.image_std) == (
        224,
        (0.485, 0.456, 0.406),
        (0.229, 0.224, 0.225),
    )
    assert (p.sample_rate, p.n_mels, p.n_fft, p.hop_length, p.window_frames) == (
        16000,
        128,
        1024,
        256,
        128,
    )
    assert p.window_samples == 32512 and p.window_seconds == pytest.approx(2.032)
    assert (p.num_frames, p.face_margin) == (16, None)
    # one source: the feature code and the encoders read these values
    assert (features.IMAGE_SIZE, features.IMAGE_MEAN, features.IMAGE_STD) == (
        p.image_size,
        p.image_mean,
        p.image_std,
    )
    assert (
        features.SAMPLE_RATE,
        features.N_MELS,
        features.N_FFT,
        features.HOP_LENGTH,
        features.N_FRAMES,
        features.WINDOW_SAMPLES,
    ) == (p.sample_rate, p.n_mels, p.n_fft, p.hop_length, p.window_frames, p.window_samples)
    assert (hf.IMAGENET_MEAN, hf.IMAGENET_STD) == (p.image_mean, p.image_std)
    cascade = inspect.signature(faces.FaceDetector).parameters
    assert {key: cascade[key].default for key in p.face_detector_kwargs()} == (
        p.face_detector_kwargs()
    )
    assert p.face_detector_kwargs() == {
        "min_face_size": 40,
        "thresholds": (0.6, 0.7, 0.7),
        "detect_side": 320,
        "factor": 0.709,
    }


def test_config_round_trips_through_json():
    config = DetectorConfig(
        fusion="attention",
        embed_dim=32,
        threshold=0.3,
        temperature=1.5,
        preprocess=PreprocessConfig(num_frames=8, face_margin=0.5),
        metadata={"note": "x"},
    )
    text = json.dumps(config.to_dict())
    assert json.loads(text)["preprocess"]["face_margin"] == 0.5
    assert DetectorConfig.from_dict(json.loads(text)) == config
    assert config.num_frames == 8
    # read access by key, as when the config was a dict
    assert (config["fusion"], config["num_frames"], config.get("missing", 1)) == ("attention", 8, 1)


def test_flat_config_of_older_files_loads_with_todays_defaults():
    config = DetectorConfig.from_dict({"fusion": "late", "num_frames": 8, "threshold": 0.4})
    assert config.preprocess == dataclasses.replace(PreprocessConfig(), num_frames=8)
    assert (config.fusion, config.threshold) == ("late", 0.4)


@pytest.mark.parametrize(
    "values, message",
    [
        ({"num_frame": 8}, "unknown detector settings"),
        ({"preprocess": {"margin": 0.3}}, "unknown preprocess settings"),
        ({"preprocess": [1, 2]}, "preprocess must be a JSON object"),
        ({"preprocess": {"image_size": 4096}}, "preprocess.image_size must be a whole number"),
        ({"preprocess": {"image_mean": [0.5, 0.5]}}, "preprocess.image_mean must be three"),
        ({"preprocess": {"image_std": [0.2, 0, 0.2]}}, "preprocess.image_std must be three"),
        ({"preprocess": {"face_thresholds": [0.6, 0.7, 1.5]}}, "face_thresholds must be three"),
        ({"preprocess": {"face_margin": 9}}, "preprocess.face_margin must be null"),
        ({"preprocess": {"face_scale_factor": 0.99}}, "face_scale_factor must be a number"),
        ({"preprocess": {"num_frames": 0}}, "num_frames must be between"),
        ({"preprocess": {"min_face_size": True}}, "min_face_size must be a whole number"),
    ],
)
def test_bad_settings_are_refused_with_the_field_named(values, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        DetectorConfig.from_dict(values)


@pytest.mark.parametrize("key", FIXED_PREPROCESS)
def test_audio_front_end_other_than_the_feature_code_is_refused(key, tmp_path):
    value = getattr(PreprocessConfig(), key) * 2
    with pytest.raises(ConfigError, match="cannot be reproduced"):
        PreprocessConfig(**{key: value})
    Detector(**TINY_ARCH).save_pretrained(tmp_path)
    stored = json.loads((tmp_path / "config.json").read_text())
    stored["preprocess"][key] = value
    (tmp_path / "config.json").write_text(json.dumps(stored))
    with pytest.raises(ConfigError, match=f"preprocess.{key} is {value}"):
        Detector.from_pretrained(tmp_path)


def test_encoders_that_undo_imagenet_statistics_refuse_others():
    with pytest.raises(ConfigError, match="'fer2013' image encoder takes crops normalised"):
        Detector(image_encoder="fer2013", embed_dim=32, preprocess={"image_mean": [0.5] * 3})
    detector = Detector(image_encoder="fer2013", embed_dim=32, preprocess={"image_size": 160})
    with pytest.raises(ConfigError, match="cannot be used with it"):
        detector.with_config(preprocess={"image_std": [0.5] * 3})
    assert detector.preprocess.image_std == PreprocessConfig().image_std


def test_with_config_changes_preprocessing_fields_it_names():
    detector = Detector(**TINY_ARCH, preprocess={"face_margin": 0.5})
    detector.with_config(preprocess={"num_frames": 4}, threshold=0.3)
    assert (detector.num_frames, detector.face_margin, detector.threshold) == (4, 0.5, 0.3)
    with pytest.raises(ConfigError, match="cannot change"):
        detector.with_config(embed_dim=64)


# --- named architectures ---------------------------------------------------------------------


def _documented_parameters() -> dict[str, float]:
    """Millions of parameters per architecture, from the size table of docs/models.md."""
    text = (REPO / "docs" / "models.md").read_text()
    rows = re.findall(r"^\| `(\w+)`[^|]*\|[^|]*\| ([\d.]+) M \|", text, flags=re.MULTILINE)
    return {name: float(value) for name, value in rows}


def test_named_architectures_build_and_match_the_documented_sizes():
    documented = _documented_parameters()
    assert list_architectures() == ("base", "starter", "tiny")
    assert set(documented) == set(list_architectures())
    for name in list_architectures():
        with torch.device("meta"), _SkipInPlace():
            detector = Detector.from_architecture(name)
        count = sum(p.numel() for p in detector.parameters())
        assert round(count / 1e6, 2) == documented[name], name
        assert detector.config.architecture() == architecture_config(name).architecture()


def test_starter_architecture_is_the_shipped_starter():
    shipped = json.loads(resources.files("mmdeepfake").joinpath("starter/config.json").read_text())
    assert architecture_config("starter").architecture() == (
        DetectorConfig.from_dict(shipped).architecture()
    )


def test_presets_tests_and_defaults_use_the_named_architectures():
    assert TrainConfig.from_sources("tiny").model == model_options("tiny")
    assert TrainConfig.from_sources("default").model == model_options("base")
    assert TINY_ARCH == model_options("tiny")
    assert TrainConfig(model="starter").model == model_options("starter")
    # Detector() is the base architecture: the same shapes, whatever the kwargs spell out
    with torch.device("meta"), _SkipInPlace():
        default, base = Detector(), Detector.from_architecture("base")
    assert {k: v.shape for k, v in default.state_dict().items()} == {
        k: v.shape for k, v in base.state_dict().items()
    }


def test_unknown_architecture_names_the_known_ones():
    with pytest.raises(ConfigError, match="unknown architecture 'huge'; choose one of base"):
        architecture_config("huge")
    with pytest.raises(ConfigError, match="unknown architecture"):
        TrainConfig(model="huge")


def test_from_architecture_takes_overrides():
    detector = Detector.from_architecture("tiny", fusion="late", num_frames=4, threshold=0.2)
    assert (detector.fusion_name, detector.num_frames, detector.threshold) == ("late", 4, 0.2)
    assert detector.config.embed_dim == 32


# --- preprocessing saved with a model reaches predict ----------------------------------------

CUSTOM = PreprocessConfig(
    image_size=160,
    image_mean=(0.3, 0.4, 0.5),
    image_std=(0.2, 0.25, 0.3),
    num_frames=5,
    face_margin=0.6,
    min_face_size=30,
    face_thresholds=(0.55, 0.65, 0.65),
)


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("custom")
    Detector(**TINY_ARCH, preprocess=CUSTOM).save_pretrained(folder)
    return folder


def _expected_face_emotions(detector, image, preprocess, margin) -> dict[str, float]:
    """Face emotions of the main face, computed by hand with the given preprocessing."""
    cascade = faces.FaceDetector.shared(**preprocess.face_detector_kwargs())
    box = cascade.detect([image], track=False)[0]
    crop = faces.crop_faces([image], [box], margin=margin)
    batch = features.faces_to_tensor(
        crop, size=preprocess.image_size, mean=preprocess.image_mean, std=preprocess.image_std
    )
    with torch.inference_mode():
        probs = torch.softmax(detector.model.encode_image(batch).emotion_logits, -1)[0]
    return {name: float(p) for name, p in zip(EMOTIONS, probs)}


def test_saved_preprocessing_comes_back(saved):
    stored = json.loads((saved / "config.json").read_text())["preprocess"]
    assert stored["face_margin"] == 0.6 and stored["image_mean"] == [0.3, 0.4, 0.5]
    assert stored["face_thresholds"] == [0.55, 0.65, 0.65] and stored["num_frames"] == 5
    loaded = Detector.from_pretrained(saved)
    assert loaded.preprocess == CUSTOM
    assert (loaded.num_frames, loaded.face_margin) == (5, 0.6)
    cascade = loaded.pipeline.face_detector()
    assert (cascade.min_face_size, cascade.thresholds) == (30, (0.55, 0.65, 0.65))
    # an override changes only the preprocessing fields it names
    changed = Detector.from_pretrained(saved, preprocess={"num_frames": 3})
    assert changed.preprocess == dataclasses.replace(CUSTOM, num_frames=3)


def test_predict_frames_crops_and_normalises_faces_as_saved(saved):
    loaded = Detector.from_pretrained(saved)
    image = mf.face_photo()
    pred = loaded.predict(image=image, audio=mf.voice_like(seconds=2.5))
    got = pred.faces[0].emotions
    expected = _expected_face_emotions(loaded, image, CUSTOM, margin=0.6)
    assert got == pytest.approx(expected, abs=2e-5)
    # the same weights with today's preprocessing read the face differently: the test sees it
    default = _expected_face_emotions(loaded, image, PreprocessConfig(), margin=faces.FACE_MARGIN)
    assert max(abs(default[e] - expected[e]) for e in EMOTIONS) > 1e-3


def test_predict_samples_the_saved_number_of_frames(saved, tmp_path):
    loaded = Detector.from_pretrained(saved)
    video = mf.face_video(tmp_path / "clip.mp4", seconds=2.0)
    frames = {face.frame_index for face in loaded.predict(video).faces}
    assert frames == set(range(5))
    frames = {face.frame_index for face in loaded.predict(video, num_frames=3).faces}
    assert frames == set(range(3))


def test_starter_keeps_todays_preprocessing():
    starter = Detector.starter()
    assert starter.preprocess == PreprocessConfig()
    assert math.isclose(starter.face_margin, faces.FACE_MARGIN)


def test_training_crops_faces_with_the_models_preprocessing():
    """The training and evaluation loaders read faces as predict does, for a custom config."""
    import io
    import pickle

    from PIL import Image

    from mmdeepfake.data.streaming import decode_face

    image = mf.face_photo()
    stream = io.BytesIO()
    Image.fromarray(image).save(stream, format="PNG")
    tensor, detected = decode_face(stream.getvalue(), 0.6, pickle.loads(pickle.dumps(CUSTOM)))
    cascade = faces.FaceDetector.shared(**CUSTOM.face_detector_kwargs())
    box = cascade.detect([image], track=False)[0]
    expected = features.faces_to_tensor(
        faces.crop_faces([image], [box], margin=0.6),
        size=160,
        mean=CUSTOM.image_mean,
        std=CUSTOM.image_std,
    )[0]
    assert detected and tensor.shape == (3, 160, 160)
    torch.testing.assert_close(tensor, expected)


def test_a_model_override_merges_into_a_named_architecture():
    config = TrainConfig.from_sources("tiny", {"model": {"embed_dim": 64}})
    assert config.model == {**model_options("tiny"), "embed_dim": 64}
