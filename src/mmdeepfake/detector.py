"""The public detector: build, save, load, share and run an audio-visual deepfake detector."""

from __future__ import annotations

import json
import numbers
import os
import time
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
from huggingface_hub import PyTorchModelHubMixin

from mmdeepfake import config_check, model_files
from mmdeepfake import evidence as evidence_lib
from mmdeepfake.config_check import check_num_frames, check_probability
from mmdeepfake.encoders import EncoderOutput
from mmdeepfake.errors import CheckpointError, ConfigError, MmDeepfakeError
from mmdeepfake.labels import EMOTIONS
from mmdeepfake.media import features
from mmdeepfake.media.decode import MediaSource
from mmdeepfake.model import EmotionConsistencyModel, ModelOutput
from mmdeepfake.model_files import CONFIG_NAME, WEIGHTS_NAME
from mmdeepfake.prediction import Face, Prediction, Segment
from mmdeepfake.threads import may_overlap, run_alongside, torch_threads

MODALITIES = ("image", "audio")


class Detector(
    torch.nn.Module,
    PyTorchModelHubMixin,
    library_name="mmdeepfake",
    tags=["deepfake-detection", "audio-visual", "emotion"],
    pipeline_tag="video-classification",
    license="apache-2.0",
):
    """Decides whether a talking-face clip (or a face plus a voice) is real or a deepfake.

    The model reads the emotion on the face and in the voice and asks whether they agree;
    ``predict`` returns the verdict with that evidence. Every constructor argument is stored in
    ``config.json`` by :meth:`save_pretrained`, so a saved folder or hub repo rebuilds the exact
    architecture.

    Args:
        image_encoder / audio_encoder / fusion: registry names (see ``mmdeepfake.ENCODERS`` and
            ``mmdeepfake.FUSIONS``).
        *_kwargs: options of those components (for example ``{"width": 16}`` for a small ResNet).
        threshold: fake probability at or above which the verdict is "fake".
        temperature: calibration temperature applied to the fused logit (fitted by training).
        num_frames: frames sampled evenly from a video.
        metadata: free-form facts about the weights (training data, metrics) kept in the config.
    """

    def __init__(
        self,
        *,
        image_encoder: str = "resnet18",
        audio_encoder: str = "cnn_lstm",
        fusion: str = "mid",
        image_encoder_kwargs: dict[str, Any] | None = None,
        audio_encoder_kwargs: dict[str, Any] | None = None,
        fusion_kwargs: dict[str, Any] | None = None,
        embed_dim: int = 256,
        dropout: float = 0.1,
        threshold: float = 0.5,
        temperature: float = 1.0,
        num_frames: int = 16,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        threshold = check_probability(threshold, "threshold")
        if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real):
            raise ConfigError(f"temperature must be a number, got {temperature!r}")
        if not temperature > 0:
            raise ConfigError(f"temperature must be positive, got {temperature!r}")
        num_frames = check_num_frames(num_frames)
        self.model = EmotionConsistencyModel(
            image_encoder=image_encoder,
            audio_encoder=audio_encoder,
            fusion=fusion,
            image_encoder_kwargs=image_encoder_kwargs,
            audio_encoder_kwargs=audio_encoder_kwargs,
            fusion_kwargs=fusion_kwargs,
            embed_dim=embed_dim,
            dropout=dropout,
        )
        self.config: dict[str, Any] = {
            **self.model.config,
            "threshold": threshold,
            "temperature": temperature,
            "num_frames": num_frames,
            "metadata": dict(metadata or {}),
        }
        self.name = "untrained"
        self.eval()

    # --- properties --------------------------------------------------------------------------

    @property
    def fusion_name(self) -> str:
        return self.config["fusion"]

    @property
    def threshold(self) -> float:
        return float(self.config["threshold"])

    @property
    def temperature(self) -> float:
        return float(self.config["temperature"])

    @property
    def metadata(self) -> dict[str, Any]:
        return self.config["metadata"]

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def forward(self, faces: torch.Tensor, waves: torch.Tensor) -> ModelOutput:
        """Score aligned batches of face crops (B,3,224,224) and voice windows (B,S)."""
        return self.model(faces, waves)

    def with_config(self, **changes: Any) -> Detector:
        """Update calibration or metadata fields in place (threshold, temperature, metadata)."""
        allowed = {"threshold", "temperature", "num_frames", "metadata"}
        unknown = set(changes) - allowed
        if unknown:
            raise ConfigError(f"cannot change {sorted(unknown)} after construction; allowed: {sorted(allowed)}")
        if "num_frames" in changes:
            changes["num_frames"] = check_num_frames(changes["num_frames"])
        if "threshold" in changes:
            changes["threshold"] = check_probability(changes["threshold"], "threshold")
        self.config.update(changes)
        return self

    # --- persistence -------------------------------------------------------------------------

    def _save_pretrained(self, save_directory: Path) -> None:
        from safetensors.torch import save_model

        save_model(self, str(Path(save_directory) / WEIGHTS_NAME))
        # Written here rather than by the hub mixin, which would record the constructor
        # arguments as passed and lose calibration fitted after construction.
        (Path(save_directory) / CONFIG_NAME).write_text(json.dumps(self.config, indent=2))

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: str | os.PathLike,
        *,
        revision: str | None = None,
        cache_dir: str | Path | None = None,
        force_download: bool = False,
        token: str | bool | None = None,
        local_files_only: bool = False,
        map_location: str = "cpu",
        **overrides: Any,
    ) -> Detector:
        """Load a detector from a local folder or a Hugging Face Hub repo id.

        Only ``model.safetensors`` is read (never a pickle). ``config.json`` is checked before
        anything is built (see :mod:`mmdeepfake.config_check`): its values and the size of
        the model they imply, then the weights' shapes from the safetensors header, so a
        crafted config cannot allocate more than its weights file holds. ``overrides`` replace
        config values (for example ``image_encoder_kwargs={"model_id": FOLDER}`` to name a
        local Hugging Face model that the config may not name itself).

        Raises:
            CheckpointError: no such folder or repo, unreadable or mismatched files.
            HubUnreachableError: a hub id while the hub does not answer (within a few seconds).
            ConfigError: config values out of range.
        """
        from safetensors.torch import load_file

        source = str(pretrained_model_name_or_path)
        config_path, weights_path = model_files.locate(
            source,
            revision=revision,
            cache_dir=cache_dir,
            force_download=force_download,
            token=token,
            local_files_only=local_files_only,
        )
        stored = config_check.read_config(config_path)
        config = config_check.check_config(
            {**stored, **overrides}, from_file=set(stored) - set(overrides)
        )
        expected = config_check.implied_shapes(config)
        if expected is not None:
            config_check.check_weights_match(expected, weights_path, source)
        try:
            detector = cls(**config)
            state = load_file(str(weights_path), device=str(map_location))
        except MmDeepfakeError:
            raise
        except Exception as exc:  # safetensors and torch raise many types on a broken file
            raise CheckpointError(
                f"could not load a detector from {source!r}: {exc}. Give a folder written by "
                "Detector.save_pretrained (config.json + model.safetensors) or a hub repo id."
            ) from exc
        missing, unexpected = detector.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise CheckpointError(
                f"the weights in {source!r} do not match its config.json "
                f"(missing: {sorted(missing)[:5]}, unexpected: {sorted(unexpected)[:5]})"
            )
        detector.eval()
        detector.name = source
        return detector

    @classmethod
    def starter(cls) -> Detector:
        """The small detector bundled with the package, trained on synthetic data only.

        It shows the pipeline end to end and separates the synthetic set well; it has never
        seen a real deepfake, so its verdicts on real media are demonstrations, not evidence.
        """
        folder = resources.files("mmdeepfake") / "starter"
        if not folder.joinpath(WEIGHTS_NAME).is_file():
            raise CheckpointError(
                "the bundled starter model is missing from this installation; reinstall "
                "mmdeepfake or load a model with Detector.from_pretrained(...)"
            )
        with resources.as_file(folder) as path:
            detector = cls.from_pretrained(path)
        detector.name = "starter"
        return detector

    # --- inference ---------------------------------------------------------------------------

    def predict(
        self,
        video: MediaSource | None = None,
        *,
        image: MediaSource | None = None,
        images: Sequence[MediaSource] | None = None,
        audio: MediaSource | None = None,
        threshold: float | None = None,
        num_frames: int | None = None,
        detect_faces: bool = True,
        abstain_below: float | None = None,
    ) -> Prediction:
        """Detect a deepfake in a video with sound, or in face image(s) plus a voice recording.

        Args:
            video: a clip with an audio track (path, bytes).
            image / images: face photo(s) (path, bytes, or HxWx3 uint8 array); needs ``audio``.
            audio: the voice recording (path, bytes, or a 16 kHz float array).
            threshold: overrides the detector's decision threshold.
            num_frames: frames sampled from a video (default from the config, 16).
            detect_faces: set False when images are already cropped to a face.
            abstain_below: if the calibrated confidence of the verdict is below this bound, the
                label is "uncertain" instead of real/fake.

        Raises:
            MmDeepfakeError: a subclass saying what is wrong with the input.
        """
        threshold = self.threshold if threshold is None else float(threshold)
        if not 0.0 <= threshold <= 1.0:
            raise ConfigError(f"threshold must be between 0 and 1, got {threshold}")
        if abstain_below is not None and not 0.5 <= abstain_below <= 1.0:
            raise ConfigError(f"abstain_below must be between 0.5 and 1, got {abstain_below}")
        started = time.perf_counter()
        see, hear = self._plan(video, image, images, audio, num_frames, detect_faces)
        caller_threads = torch.get_num_threads()
        sight, (voice, audio_out) = run_alongside(
            lambda: self._listen(hear, caller_threads), see, overlap=may_overlap(self.device)
        )
        evidence = evidence_lib.combine(sight, voice)
        source = _describe_source(video if video is not None else (image if image is not None else images))
        return self._score(evidence, audio_out, threshold, abstain_below, source, started)

    def _plan(
        self, video, image, images, audio, num_frames, detect_faces
    ) -> tuple[Callable[[], evidence_lib.Sight], Callable[[], evidence_lib.Voice]]:
        """Check the arguments; return the two halves of the work: (see, hear)."""
        stills = [image] if image is not None else list(images or [])
        if image is not None and images:
            raise ConfigError("give either image= or images=, not both")
        faces = self._face_detector()
        # The face crop is framed as the image encoder was trained (its declared margin).
        margin = self.model.image_encoder.face_margin
        if video is not None:
            if stills or audio is not None:
                raise ConfigError("give either a video, or image(s) with audio, not both")
            frames = int(num_frames or self.config["num_frames"])
            if frames < 1:
                raise ConfigError(f"num_frames must be at least 1, got {frames}")
            return (
                lambda: evidence_lib.sight_from_video(
                    video, num_frames=frames, detect_faces=detect_faces, detector=faces,
                    margin=margin,
                ),
                lambda: evidence_lib.voice_from_video(video),
            )
        if not stills or audio is None:
            raise ConfigError(
                "predict needs a video with sound, or a face image (image= or images=) together "
                "with a voice recording (audio=)"
            )
        return (
            lambda: evidence_lib.sight_from_images(
                stills, detect_faces=detect_faces, detector=faces, margin=margin
            ),
            lambda: evidence_lib.voice_from_recording(audio),
        )

    def _face_detector(self):
        """The shared face detector on this detector's device (the cascade runs there too)."""
        from mmdeepfake.media.faces import FaceDetector

        return FaceDetector.shared(self.device)

    def _listen(
        self, hear: Callable[[], evidence_lib.Voice], caller_threads: int
    ) -> tuple[evidence_lib.Voice, EncoderOutput]:
        """The voice half, on a helper thread: decode the audio, cut it, run the voice encoder.

        One intra-op thread (see `_encode`); the caller's count is restored afterwards, because
        changing it here also changes the default of threads that start later.
        """
        voice = hear()
        device = self.device
        with torch.inference_mode(), torch_threads(1, device, restore=caller_threads):
            start = time.perf_counter()
            # Windows are cut and encoded in bounded batches: memory does not grow with duration.
            batches = (_to_device(b, device) for b in evidence_lib.window_batches(voice))
            audio_out = evidence_lib.encode_in_batches(
                self.model.encode_audio, batches, len(voice.windows)
            )
            voice.timings["audio_encoder"] = _elapsed(start, device)
        return voice, audio_out

    def _encode(
        self, faces: torch.Tensor, waves: torch.Tensor
    ) -> tuple[EncoderOutput, EncoderOutput]:
        """Both encoders' forward passes, one after the other (benchmarks time this alone).

        The ResNet's large convolutions use every intra-op thread. The voice encoder's LSTM
        steps and the fusion head are many tiny operations: a second thread barely speeds them
        up on an idle CPU, but when another process holds a core every operation waits for the
        descheduled thread (measured on 2 cores with one busy: voice encoder 1.7 s with 2
        threads, 0.09 s with 1), so they run on one.
        """
        image_out = self.model.encode_image(faces)
        with torch_threads(1, faces.device):
            audio_out = self.model.encode_audio(waves)
        return image_out, audio_out

    @torch.inference_mode()
    def _score(
        self,
        ev: evidence_lib.Evidence,
        audio_out: EncoderOutput,
        threshold: float,
        abstain_below: float | None,
        source: str | None,
        started: float,
    ) -> Prediction:
        """Encode the faces, fuse them with the encoded voice, and explain the verdict."""
        device = self.device
        start = time.perf_counter()
        face_batch = _to_device(features.faces_to_tensor(ev.crops), device)
        ev.timings["features"] = ev.timings.get("features", 0.0) + _elapsed(start, device)

        start = time.perf_counter()
        image_out = self.model.encode_image(face_batch)
        ev.timings["image_encoder"] = _elapsed(start, device)

        start = time.perf_counter()
        with torch_threads(1, device):
            out = evidence_lib.fuse_in_batches(self.model.fuse, image_out, ev.groups, audio_out)
        ev.timings["fusion"] = _elapsed(start, device)

        temperature = self.temperature
        segment_logits = out.fake_logit.float().cpu() / temperature
        segment_probs = torch.sigmoid(segment_logits).numpy()
        face_probs_per_crop = torch.softmax(image_out.emotion_logits.float(), dim=-1).cpu().numpy()
        face_probs_per_segment = torch.softmax(out.face_emotion_logits.float(), dim=-1).cpu().numpy()
        voice_probs = torch.softmax(out.voice_emotion_logits.float(), dim=-1).cpu().numpy()
        consistency = out.consistency.float().cpu().numpy()

        fake_probability = float(torch.sigmoid(segment_logits.mean()))
        confidence = max(fake_probability, 1.0 - fake_probability)
        if abstain_below is not None and confidence < abstain_below:
            label = "uncertain"
        else:
            label = "fake" if fake_probability >= threshold else "real"

        segments = [
            Segment(
                start=round(start_s, 3),
                end=round(end_s, 3),
                face_emotions=_emotion_dict(face_probs_per_segment[i]),
                voice_emotions=_emotion_dict(voice_probs[i]),
                consistency=float(consistency[i]),
                fake_probability=float(segment_probs[i]),
            )
            for i, (start_s, end_s) in enumerate(ev.window_times)
        ]
        faces = [
            Face(
                frame_index=int(frame),
                time=None if t is None else round(float(t), 3),
                box=tuple(round(float(v), 1) for v in (box.x1, box.y1, box.x2, box.y2)),
                score=round(float(box.score), 4),
                emotions=_emotion_dict(face_probs_per_crop[i]),
            )
            for i, (frame, t, box) in enumerate(zip(ev.face_frames, ev.face_times, ev.boxes))
        ]
        modality_scores = {
            name: float(torch.sigmoid(logits.float().mean()).cpu())
            for name, logits in (out.modality_logits or {}).items()
        }
        weights = None
        if out.fusion_weights is not None:
            mean_weights = out.fusion_weights.float().mean(dim=0).cpu().numpy()
            weights = {name: float(w) for name, w in zip(MODALITIES, mean_weights)}
        return Prediction(
            label=label,
            fake_probability=fake_probability,
            threshold=threshold,
            face_emotions=_emotion_dict(face_probs_per_crop.mean(axis=0)),
            voice_emotions=_emotion_dict(voice_probs.mean(axis=0)),
            consistency=float(consistency.mean()),
            modality_scores=modality_scores,
            fusion=self.fusion_name,
            fusion_weights=weights,
            segments=segments,
            faces=faces,
            warnings=list(ev.warnings),
            source=source,
            duration=round(float(ev.duration), 3),
            timings={
                **{k: round(v, 4) for k, v in ev.timings.items()},
                "total": round(time.perf_counter() - started, 4),
            },
        )


def _to_device(batch: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Move a CPU batch to the model's device; through pinned memory for an asynchronous copy."""
    if device.type == "cpu":
        return batch
    return batch.pin_memory().to(device, non_blocking=True)


def _elapsed(start: float, device: torch.device) -> float:
    """Seconds since `start`, after the device finished its queued work (honest GPU timings)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def _emotion_dict(probs: np.ndarray) -> dict[str, float]:
    return {name: round(float(p), 5) for name, p in zip(EMOTIONS, probs)}


def _describe_source(source: Any) -> str | None:
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    if isinstance(source, (list, tuple)) and source and isinstance(source[0], (str, os.PathLike)):
        return str(source[0])
    return None

