"""The public detector: build, save, load, share and run an audio-visual deepfake detector."""

from __future__ import annotations

import json
import numbers
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
from huggingface_hub import PyTorchModelHubMixin

from mmdeepfake import config_check, model_files
from mmdeepfake import evidence as evidence_lib
from mmdeepfake.config_check import check_num_frames, check_probability
from mmdeepfake.domain import DomainCheck
from mmdeepfake.encoders import EncoderOutput
from mmdeepfake.errors import (
    CheckpointError,
    ConfigError,
    MmDeepfakeError,
    NoAudioTrackError,
    NoFaceFoundError,
    SilentAudioError,
)
from mmdeepfake.labels import EMOTIONS
from mmdeepfake.media import features
from mmdeepfake.media.decode import MediaSource
from mmdeepfake.model import EmotionConsistencyModel, ModelOutput
from mmdeepfake.model_card import build_model_card
from mmdeepfake.model_files import CONFIG_NAME, WEIGHTS_NAME
from mmdeepfake.prediction import Face, ModelInfo, Prediction, Segment
from mmdeepfake.threads import may_overlap, run_alongside, torch_threads

CARD_NAME = "README.md"
MODALITIES = ("image", "audio")
UNTRAINED = "untrained"
ON_UNFAMILIAR = ("uncertain", "warn")
REQUIRE = ("any", "both")
# A one-modality head below this validation ROC-AUC is reported as not informative.
INFORMATIVE_AUC = 0.6
# Errors meaning that a modality is simply not in the input (not that the input is broken):
# with require="any" the other modality is scored alone.
_MISSING_MODALITY = (NoAudioTrackError, SilentAudioError, NoFaceFoundError)
_ABSENCE = {
    NoAudioTrackError: "the video has no sound track",
    SilentAudioError: "the sound is silent",
    NoFaceFoundError: "no face was found",
}
_NOUN = {"image": "face", "audio": "voice"}


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
        # The card too: a model loaded with its own card (the starter's "synthetic data only"
        # note, a card edited by hand) keeps it; the mixin would write a generic one instead.
        # push_to_hub saves through here, so the uploaded card is the same.
        (Path(save_directory) / CARD_NAME).write_text(self.model_card())

    def model_card(self) -> str:
        """The model card saved with the weights: the card this model was loaded with, if it
        had one, else one generated from its config and metadata."""
        card = getattr(self, "card", None)
        if card:
            return card
        return build_model_card(self.config)

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
        detector.card = _read_card(weights_path.parent)
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
        on_unfamiliar: str = "uncertain",
        require: str = "any",
    ) -> Prediction:
        """Detect a deepfake in a video, in face image(s) plus a voice, or in one of them alone.

        Args:
            video: a clip (path, bytes); its sound track is the voice.
            image / images: face photo(s) (path, bytes, or HxWx3 uint8 array).
            audio: the voice recording (path, bytes, or a 16 kHz float array).
            threshold: overrides the detector's decision threshold.
            num_frames: frames sampled from a video (default from the config, 16).
            detect_faces: set False when images are already cropped to a face.
            abstain_below: if the calibrated confidence of the verdict is below this bound, the
                label is "uncertain" instead of real/fake.
            on_unfamiliar: what to do when a modality is unlike the model's training data (see
                ``Prediction.domain``): ``"uncertain"`` (default) labels the input "uncertain",
                ``"warn"`` keeps the real/fake verdict. Both add a warning.
            require: ``"any"`` (default) scores whatever modality is there: a face alone, a
                voice alone, a video without sound (or with silent sound, or where no face is
                found) is scored by that modality's own head, without the consistency cue.
                ``"both"`` insists on a face and a voice and raises the typed errors instead.

        Raises:
            MmDeepfakeError: a subclass saying what is wrong with the input.
        """
        threshold = self.threshold if threshold is None else float(threshold)
        if not 0.0 <= threshold <= 1.0:
            raise ConfigError(f"threshold must be between 0 and 1, got {threshold}")
        if abstain_below is not None and not 0.5 <= abstain_below <= 1.0:
            raise ConfigError(f"abstain_below must be between 0.5 and 1, got {abstain_below}")
        if on_unfamiliar not in ON_UNFAMILIAR:
            raise ConfigError(f"on_unfamiliar must be one of {ON_UNFAMILIAR}, got {on_unfamiliar!r}")
        if require not in REQUIRE:
            raise ConfigError(f"require must be one of {REQUIRE}, got {require!r}")
        started = time.perf_counter()
        see, hear = self._plan(video, image, images, audio, num_frames, detect_faces, require)
        caller_threads = torch.get_num_threads()
        strict = require == "both"
        sight, heard = run_alongside(
            (lambda: _attempt(lambda: self._listen(hear, caller_threads), strict)) if hear
            else (lambda: None),
            (lambda: _attempt(see, strict)) if see else (lambda: None),
            overlap=may_overlap(self.device),
        )
        source = _describe_source(
            video if video is not None else (image if image is not None else images or audio))
        absent = {m: r for m, r in (("image", sight), ("audio", heard))
                  if isinstance(r, MmDeepfakeError)}
        if len(absent) == 2 or (absent and (see is None or hear is None)):
            raise absent.get("audio") or absent["image"]  # the voice's error, as run_alongside
        request = _Request(threshold, abstain_below, on_unfamiliar, source, started)
        if see is not None and hear is not None and not absent:
            voice, audio_out = heard
            evidence = evidence_lib.combine(sight, voice)
            return self._score(evidence, audio_out, request)
        if see is not None and "image" not in absent:
            reason = _ABSENCE.get(type(absent.get("audio")), "no voice was given")
            return self._score_alone("image", sight, None, reason, request)
        voice, audio_out = heard
        reason = _ABSENCE.get(type(absent.get("image")), "no face image was given")
        return self._score_alone("audio", voice, audio_out, reason, request)

    def _plan(
        self, video, image, images, audio, num_frames, detect_faces, require="any"
    ) -> tuple[Callable[[], evidence_lib.Sight] | None, Callable[[], evidence_lib.Voice] | None]:
        """Check the arguments; return the two halves of the work, (see, hear), either of
        which is None when that modality was not given."""
        stills = [image] if image is not None else list(images or [])
        if image is not None and images:
            raise ConfigError("give either image= or images=, not both")
        faces = self._face_detector()
        # The face crop is framed as the image encoder was trained (its declared margin).
        margin = self.model.image_encoder.face_margin
        if video is not None:
            if stills or audio is not None:
                raise ConfigError("give either a video, or image(s) with audio, not both")
            frames = check_num_frames(self.config["num_frames"] if num_frames is None else num_frames)
            return (
                lambda: evidence_lib.sight_from_video(
                    video, num_frames=frames, detect_faces=detect_faces, detector=faces,
                    margin=margin,
                ),
                lambda: evidence_lib.voice_from_video(video),
            )
        if not stills and audio is None:
            raise ConfigError(
                "predict needs a video, a face image (image= or images=), a voice recording "
                "(audio=), or a face image together with a voice recording"
            )
        if require == "both" and (not stills or audio is None):
            raise ConfigError(
                "require='both': predict needs a video with sound, or a face image (image= or "
                "images=) together with a voice recording (audio=)"
            )
        see = (
            (lambda: evidence_lib.sight_from_images(stills, detect_faces=detect_faces,
                                                    detector=faces,
                                                    margin=margin))
            if stills else None
        )
        hear = (lambda: evidence_lib.voice_from_recording(audio)) if audio is not None else None
        return see, hear

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

    def _encode_faces(self, crops: np.ndarray, timings: dict[str, float]) -> EncoderOutput:
        """Face crops -> the image encoder's output, timing the tensor copy and the encoder."""
        device = self.device
        start = time.perf_counter()
        batch = _to_device(features.faces_to_tensor(crops), device)
        timings["features"] = timings.get("features", 0.0) + _elapsed(start, device)
        start = time.perf_counter()
        out = self.model.encode_image(batch)
        timings["image_encoder"] = _elapsed(start, device)
        return out

    @torch.inference_mode()
    def _score(
        self, ev: evidence_lib.Evidence, audio_out: EncoderOutput, request: _Request
    ) -> Prediction:
        """Encode the faces, fuse them with the encoded voice, and explain the verdict."""
        device = self.device
        image_out = self._encode_faces(ev.crops, ev.timings)

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
        domain = {
            "image": self.model.domain_guard.check("image", image_out.embedding),
            "audio": self.model.domain_guard.check("audio", audio_out.embedding),
        }
        warnings = list(ev.warnings)
        label = self._verdict(fake_probability, domain, request, warnings)

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
            threshold=request.threshold,
            face_emotions=_emotion_dict(face_probs_per_crop.mean(axis=0)),
            voice_emotions=_emotion_dict(voice_probs.mean(axis=0)),
            consistency=float(consistency.mean()),
            modality_scores=modality_scores,
            fusion=self.fusion_name,
            fusion_weights=weights,
            segments=segments,
            faces=_faces(ev, face_probs_per_crop),
            warnings=warnings,
            source=request.source,
            duration=round(float(ev.duration), 3),
            timings=_timings(ev.timings, request.started),
            modalities=list(MODALITIES),
            domain={m: check.to_dict() for m, check in domain.items()},
            model=self.model_info,
        )

    @torch.inference_mode()
    def _score_alone(
        self,
        modality: str,
        half: evidence_lib.Sight | evidence_lib.Voice,
        audio_out: EncoderOutput | None,
        reason: str,
        request: _Request,
    ) -> Prediction:
        """Score one modality with its own head (``EmotionConsistencyModel.head_logit``).

        The head's logit is divided by the head's own temperature, fitted on the validation
        split with the guard (``metadata["modality_calibration"]``), or by the model's
        temperature for models saved without one.
        """
        device = self.device
        if modality == "image":
            out = self._encode_faces(half.crops, half.timings)
        else:
            out = audio_out
        start = time.perf_counter()
        logits = self.model.head_logit(modality, out.embedding).float().cpu()
        half.timings["fusion"] = _elapsed(start, device)
        calibration = (self.metadata.get("modality_calibration") or {}).get(modality) or {}
        temperature = float(calibration.get("temperature") or self.temperature)
        fake_probability = float(torch.sigmoid(logits.mean() / temperature))
        emotions = torch.softmax(out.emotion_logits.float(), dim=-1).cpu().numpy()
        domain = {modality: self.model.domain_guard.check(modality, out.embedding)}
        what = _NOUN[modality]
        alone = (f"only the {what} was analysed ({reason}): the emotion-consistency cue, which "
                 f"compares face and voice, was unavailable, so the verdict comes from the "
                 f"{what}-only head")
        warnings = [*half.warnings, alone]
        auc = calibration.get("val_auc")
        if auc is None:
            auc = (self.metadata.get("val_metrics") or {}).get(f"val_auc_{modality}")
        if auc is not None and auc < INFORMATIVE_AUC:
            warnings.append(
                f"this model's {what}-only head scored ROC-AUC {auc:.2f} on its validation "
                "split (0.5 is chance): its one-modality verdict is not informative"
            )
        label = self._verdict(fake_probability, domain, request, warnings)
        mean = _emotion_dict(emotions.mean(axis=0))
        if modality == "image":
            duration = half.duration
            faces = _faces(half, emotions)
        else:
            duration = len(half.wave) / features.SAMPLE_RATE
            faces = []
        return Prediction(
            label=label,
            fake_probability=fake_probability,
            threshold=request.threshold,
            face_emotions=mean if modality == "image" else {},
            voice_emotions=mean if modality == "audio" else {},
            consistency=None,
            modality_scores={modality: fake_probability},
            fusion=self.fusion_name,
            fusion_weights=None,
            segments=[],
            faces=faces,
            warnings=warnings,
            source=request.source,
            duration=None if duration is None else round(float(duration), 3),
            timings=_timings(half.timings, request.started),
            modalities=[modality],
            domain={m: check.to_dict() for m, check in domain.items()},
            model=self.model_info,
        )

    def _verdict(
        self, fake_probability: float, domain: dict[str, DomainCheck], request: _Request,
        warnings: list[str],
    ) -> str:
        """The label, after the guard and the abstention bound; adds the matching warnings."""
        warnings.extend(self._model_warnings())
        unfamiliar = [m for m, check in domain.items() if check.familiar is False]
        for modality in unfamiliar:
            check = domain[modality]
            warnings.append(
                f"the {_NOUN[modality]} is unlike anything this model was trained on (distance "
                f"{check.distance:.1f}, limit {check.limit:.1f}): its verdict on this input is "
                "not evidence"
                + ("; labelled uncertain, with the probability still reported"
                   if request.on_unfamiliar == "uncertain" else "")
            )
        if any(check.familiar is None for check in domain.values()):
            warnings.append(
                "this model has no unfamiliar-input guard (it was saved without one): it cannot "
                "tell when an input is unlike its training data; fit one with "
                "scripts/fit_domain_guard.py"
            )
        if unfamiliar and request.on_unfamiliar == "uncertain":
            return "uncertain"
        confidence = max(fake_probability, 1.0 - fake_probability)
        if request.abstain_below is not None and confidence < request.abstain_below:
            return "uncertain"
        return "fake" if fake_probability >= request.threshold else "real"

    @property
    def model_info(self) -> ModelInfo:
        """Which model this is and what it was trained on, as every prediction reports it."""
        meta = self.metadata
        if self.name == UNTRAINED and not meta:
            return ModelInfo(name=self.name, training_data="nothing: random weights",
                             synthetic=False)
        statement = str(meta.get("training_data") or meta.get("trained_on")
                        or "not recorded in the model's metadata")
        synthetic = bool(meta.get("synthetic_data")) or "mmdeepfake-synth" in statement
        return ModelInfo(name=self.name, training_data=statement, synthetic=synthetic)

    def _model_warnings(self) -> list[str]:
        info = self.model_info
        notes = []
        if info.name == UNTRAINED and not self.metadata:
            notes.append(
                "this detector was built with Detector() and never trained or loaded: its "
                "weights are random and its verdict means nothing; load one with "
                "Detector.from_pretrained(...) or Detector.starter()"
            )
        if info.synthetic:
            notes.append(
                f"this model was trained on synthetic data only ({info.training_data}): it has "
                "never seen real faces, voices or deepfakes, so its verdicts on real media are "
                "not evidence"
            )
        return notes


@dataclass(frozen=True)
class _Request:
    """The caller's options for one prediction, passed from predict to the scoring step."""

    threshold: float
    abstain_below: float | None
    on_unfamiliar: str
    source: str | None
    started: float


def _attempt(work: Callable[[], Any], strict: bool) -> Any:
    """Run one half; with ``strict`` off, a missing modality is returned instead of raised."""
    try:
        return work()
    except _MISSING_MODALITY as exc:
        if strict:
            raise
        return exc


def _faces(half: evidence_lib.Evidence | evidence_lib.Sight, probs: np.ndarray) -> list[Face]:
    return [
        Face(
            frame_index=int(frame),
            time=None if t is None else round(float(t), 3),
            box=tuple(round(float(v), 1) for v in (box.x1, box.y1, box.x2, box.y2)),
            score=round(float(box.score), 4),
            emotions=_emotion_dict(probs[i]),
        )
        for i, (frame, t, box) in enumerate(zip(half.face_frames, half.face_times, half.boxes))
    ]


def _timings(timings: dict[str, float], started: float) -> dict[str, float]:
    return {**{k: round(v, 4) for k, v in timings.items()},
            "total": round(time.perf_counter() - started, 4)}


def _read_card(folder: Path) -> str | None:
    """The model card saved next to the weights (for a hub repo: if the download fetched it)."""
    card = folder / CARD_NAME
    return card.read_text() if card.is_file() else None


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

