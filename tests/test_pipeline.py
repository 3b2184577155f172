"""The pipeline beside the network: what it scores, what it hands back, and that the facade
answers exactly what it answers.

The crops and voice the pipeline returns are compared with the ones decoded here, step by step,
with the media functions themselves; the embeddings its public ``encode`` gives are compared
with the ones a prediction was built from (read where the prediction hands them to the
unfamiliar-input guard); and the demo's detection, which shows the crops and the voice, is
checked to open the video no more often than a bare prediction does.
"""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from mmdeepfake import Detector
from mmdeepfake.errors import ConfigError
from mmdeepfake.media import decode, features
from mmdeepfake.media.faces import FaceDetector, crop_faces
from mmdeepfake.pipeline import DetectionPipeline
from mmdeepfake.testing import media as mf
from tiny_models import TINY_ARCH

REPO = Path(__file__).resolve().parents[1]
FRAMES = 6


@pytest.fixture(scope="module")
def detector() -> Detector:
    torch.manual_seed(0)
    return Detector(**TINY_ARCH)


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("media")
    return str(mf.face_video(folder / "face.mp4", seconds=3.0, size=(320, 240)))


@pytest.fixture(scope="module")
def pair(tmp_path_factory) -> dict[str, str]:
    from PIL import Image

    folder = tmp_path_factory.mktemp("pair")
    Image.fromarray(mf.face_photo()).save(folder / "face.png")
    mf.write_audio(folder / "voice.wav", mf.voice_like(3.0))
    return {"image": str(folder / "face.png"), "audio": str(folder / "voice.wav")}


def _crops_decoded_here(detector: Detector, frames: list[np.ndarray], track: bool) -> np.ndarray:
    """Face crops as the media functions give them: the shared face detector's boxes, cropped
    with the image encoder's margin."""
    boxes = FaceDetector.shared(detector.device).detect(frames, track=track)
    kept = [i for i, box in enumerate(boxes) if box is not None]
    margin = detector.model.image_encoder.face_margin
    return crop_faces([frames[i] for i in kept], [boxes[i] for i in kept], margin=margin)


def _embeddings_scored(detector: Detector, monkeypatch) -> dict[str, torch.Tensor]:
    """Record the embeddings each prediction hands to the unfamiliar-input guard."""
    seen: dict[str, torch.Tensor] = {}
    guard = detector.model.domain_guard
    check = guard.check

    def recording(modality: str, embeddings: torch.Tensor):
        seen[modality] = embeddings.detach().clone()
        return check(modality, embeddings)

    monkeypatch.setattr(guard, "check", recording)
    return seen


# --- what the pipeline hands back ------------------------------------------------------------


def test_video_crops_and_wave_equal_the_ones_decoded_by_the_media_functions(detector, clip):
    result = detector.pipeline.run(clip, num_frames=FRAMES, keep_media=True)
    video = decode.load_video(clip, num_frames=FRAMES, decode_audio=False)
    expected = _crops_decoded_here(detector, list(video.frames), track=True)
    assert result.crops is not None and result.wave is not None
    assert result.crops.shape == expected.shape == (len(result.prediction.faces), 224, 224, 3)
    assert np.array_equal(result.crops, expected)
    voice = decode.read_video_audio(clip, sample_rate=features.SAMPLE_RATE)
    assert result.wave.dtype == np.float32
    assert np.array_equal(result.wave, voice.wave)


def test_pair_crops_and_wave_equal_the_ones_decoded_by_the_media_functions(detector, pair):
    result = detector.pipeline.run(**pair, keep_media=True)
    expected = _crops_decoded_here(detector, [decode.load_image(pair["image"])], track=False)
    assert np.array_equal(result.crops, expected)
    voice = decode.read_audio(pair["audio"], sample_rate=features.SAMPLE_RATE)
    assert np.array_equal(result.wave, voice.wave)


def test_one_modality_hands_back_nothing_for_the_other(detector, pair):
    voice_only = detector.pipeline.run(audio=pair["audio"], keep_media=True)
    assert voice_only.crops.shape == (0, 224, 224, 3)
    assert len(voice_only.wave) == len(
        decode.read_audio(pair["audio"], sample_rate=features.SAMPLE_RATE).wave
    )
    face_only = detector.pipeline.run(image=pair["image"], keep_media=True)
    assert len(face_only.crops) == len(face_only.prediction.faces) == 1
    assert face_only.wave.shape == (0,)


def test_the_pipeline_takes_frames_margin_and_face_settings_from_the_preprocessing(clip):
    torch.manual_seed(0)
    detector = Detector(**TINY_ARCH)
    detector.with_config(preprocess={"num_frames": 4, "face_margin": 0.6, "min_face_size": 30})
    pipeline = detector.pipeline
    assert pipeline.preprocess == detector.preprocess
    assert pipeline.face_detector() is FaceDetector.shared(detector.device, min_face_size=30)
    assert pipeline.face_detector().min_face_size == 30
    result = pipeline.run(clip, keep_media=True)
    video = decode.load_video(clip, num_frames=4, decode_audio=False)
    frames = list(video.frames)
    boxes = pipeline.face_detector().detect(frames, track=True)
    kept = [i for i, box in enumerate(boxes) if box is not None]
    expected = crop_faces([frames[i] for i in kept], [boxes[i] for i in kept], margin=0.6)
    assert len(result.prediction.faces) == len(kept) <= 4
    assert np.array_equal(result.crops, expected)


def test_media_is_not_kept_unless_asked(detector, clip):
    result = detector.pipeline.run(clip, num_frames=FRAMES)
    assert result.crops is None and result.wave is None


# --- encode() and the facade -------------------------------------------------------------------


def test_encode_gives_the_embeddings_the_prediction_is_built_from(detector, clip, monkeypatch):
    seen = _embeddings_scored(detector, monkeypatch)
    result = detector.pipeline.run(clip, num_frames=FRAMES, keep_media=True)
    faces = features.faces_to_tensor(result.crops)
    waves = features.waves_to_windows(result.wave, features.audio_windows(result.wave))
    with torch.inference_mode():
        image_out, audio_out = detector.pipeline.encode(faces, waves)
    assert image_out.embedding.shape[0] == len(result.prediction.faces)
    assert audio_out.embedding.shape[0] == len(result.prediction.segments)
    torch.testing.assert_close(image_out.embedding, seen["image"], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(audio_out.embedding, seen["audio"], atol=1e-5, rtol=1e-5)


def _same(a: dict, b: dict) -> None:
    a, b = dict(a), dict(b)
    a.pop("timings"), b.pop("timings")
    assert a == b


def test_detector_predict_equals_the_pipeline_run(detector, clip, pair):
    _same(
        detector.predict(clip, num_frames=FRAMES).to_dict(),
        detector.pipeline.run(clip, num_frames=FRAMES).prediction.to_dict(),
    )
    _same(
        detector.predict(**pair, abstain_below=0.9).to_dict(),
        detector.pipeline.run(**pair, abstain_below=0.9).prediction.to_dict(),
    )
    _same(
        detector.predict(audio=pair["audio"]).to_dict(),
        detector.pipeline.run(audio=pair["audio"]).prediction.to_dict(),
    )


def test_the_pipeline_follows_calibration_changed_after_construction(pair):
    torch.manual_seed(0)
    detector = Detector(**TINY_ARCH)
    before = detector.predict(**pair)
    detector.with_config(threshold=0.05, temperature=3.0)
    after = detector.pipeline.run(**pair).prediction
    assert after.threshold == 0.05
    segment_logits = [
        np.log(s.fake_probability / (1 - s.fake_probability)) for s in before.segments
    ]
    expected = 1 / (1 + np.exp(-np.mean(segment_logits) / 3.0))
    assert after.fake_probability == pytest.approx(expected, abs=1e-5)


def test_the_pipeline_refuses_bad_options_with_typed_errors(detector, clip):
    pipeline = DetectionPipeline(detector.model)
    with pytest.raises(ConfigError):
        pipeline.run(clip, threshold=1.5)
    with pytest.raises(ConfigError):
        pipeline.run(clip, require="sometimes")
    with pytest.raises(ConfigError):
        pipeline.run()


def test_the_pipeline_is_no_part_of_the_saved_weights(detector):
    keys = set(detector.state_dict())
    assert detector.pipeline.model is detector.model
    assert keys == set(detector.state_dict())
    assert all(key.startswith("model.") for key in keys)


# --- the demo shows the crops without decoding the video again ---------------------------------


def _count_opens(monkeypatch, path: str) -> list[str]:
    """Count PyAV opens of `path` (every decode of the video goes through av.open)."""
    opened: list[str] = []
    real_open = av.open

    def counting(source, *args, **kwargs):
        if str(source) == path:
            opened.append(path)
        return real_open(source, *args, **kwargs)

    monkeypatch.setattr(av, "open", counting)
    return opened


def test_the_demo_decodes_the_video_no_more_often_than_a_prediction(detector, monkeypatch):
    pytest.importorskip("gradio")
    sys.path.insert(0, str(REPO / "demos"))
    from mmdeepfake_demo.handlers import Handlers
    from mmdeepfake_demo.media import GALLERY_SIZE, upload_area
    from mmdeepfake_demo.models import LoadedModel, ModelStore

    folder = upload_area() / f"test-pipeline-{uuid.uuid4().hex}"
    folder.mkdir(parents=True)
    try:
        path = str(mf.face_video(folder / "face.mp4", seconds=3.0, size=(320, 240)))
        opened = _count_opens(monkeypatch, path)
        plain = detector.predict(path, num_frames=FRAMES)
        by_prediction = len(opened)
        assert by_prediction > 0  # the spy sees every probe and decode of the video
        handlers = Handlers(ModelStore(LoadedModel("tiny", {detector.fusion_name: detector})))
        pred, shown = handlers.detect(path, 0.5, FRAMES, None)
        views = handlers.explain(pred, shown)
        assert len(opened) - by_prediction == by_prediction
        voice = decode.read_video_audio(path, sample_rate=features.SAMPLE_RATE).wave
    finally:
        for file in folder.iterdir():
            file.unlink()
        folder.rmdir()
    assert pred["fake_probability"] == pytest.approx(plain.fake_probability, abs=1e-6)
    gallery = views[2]
    assert len(gallery) == len(pred["faces"]) == len(shown.crops)
    assert shown.crops.shape[1:] == (GALLERY_SIZE, GALLERY_SIZE, 3)
    assert np.array_equal(shown.wave, voice)


def test_gather_then_score_gathered_equals_the_run_even_through_pickle(detector, clip, pair):
    import pickle

    pipeline = detector.pipeline
    cases = [
        ({"video": clip, "num_frames": FRAMES}, {}),
        (dict(pair), {"abstain_below": 0.9, "threshold": 0.3}),
        ({"audio": pair["audio"]}, {"on_unfamiliar": "warn"}),
        ({"image": pair["image"]}, {}),
    ]
    for media, verdict_options in cases:
        gathered = pickle.loads(pickle.dumps(pipeline.gather(**media)))
        assert gathered.seconds > 0
        _same(
            pipeline.run(**media, **verdict_options).prediction.to_dict(),
            pipeline.score_gathered(gathered, **verdict_options).to_dict(),
        )


def test_gather_keeps_the_error_of_a_missing_modality_and_raises_when_none_is_left(
    detector, tmp_path
):
    from mmdeepfake.errors import NoAudioTrackError, NoFaceFoundError

    silent = str(mf.face_video(tmp_path / "silent.mp4", seconds=1.0, with_audio=False))
    pipeline = detector.pipeline
    gathered = pipeline.gather(silent, num_frames=FRAMES)
    assert isinstance(gathered.audio, NoAudioTrackError) and gathered.source == silent
    assert gathered.image.crops.shape == (FRAMES, 224, 224, 3)
    assert gathered.image.crops.dtype == np.uint8
    assert pipeline.score_gathered(gathered).modalities == ["image"]
    with pytest.raises(NoAudioTrackError):
        pipeline.gather(silent, num_frames=FRAMES, require="both")
    blank = np.zeros((120, 160, 3), dtype=np.uint8)
    with pytest.raises(NoFaceFoundError):
        pipeline.gather(image=blank)
    with pytest.raises(ConfigError):
        pipeline.score_gathered(gathered, threshold=1.5)


def test_the_gatherer_carries_the_preprocessing_without_the_network(detector):
    gatherer = detector.pipeline.gatherer("cpu")
    assert gatherer.preprocess == detector.preprocess
    assert gatherer.face_margin == detector.pipeline.face_margin
    assert gatherer.face_detector() is detector.pipeline.face_detector()
