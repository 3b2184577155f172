"""From media to a verdict: everything around the network that a prediction needs.

The persisted network (:class:`~mmdeepfake.model.EmotionConsistencyModel`) turns face crops and
voice windows into logits; :class:`DetectionPipeline` does the rest of the work of a
prediction: it checks the caller's options, decodes the media, finds and crops the faces, cuts
the voice into windows, runs the two halves side by side under the thread policy of
:mod:`mmdeepfake.threads`, calls the encoders and the fusion, and explains the result as a
:class:`~mmdeepfake.prediction.Prediction`. :class:`~mmdeepfake.detector.Detector` is the
public facade over the two: ``Detector.predict`` runs ``detector.pipeline``.

A prediction is CPU work (decoding, face finding, cutting the voice) followed by the network.
:meth:`DetectionPipeline.gather` does the first part alone and returns a picklable
:class:`GatheredMedia`; :meth:`DetectionPipeline.score_gathered` does the rest. A distributed
engine (:mod:`mmdeepfake.scale.scoring`) runs the two on different workers, so decoding scales
on CPU tasks while the network runs in a few model actors. :class:`MediaGatherer` is the first
part without the network, for a worker that never loads the model.

The pipeline can also hand back what it decoded (:meth:`DetectionPipeline.run` with
``keep_media=True``): the face crops the image encoder read and the voice the audio encoder
heard, so a caller that shows them (the demo page) does not decode the media a second time.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

import numpy as np
import torch

from mmdeepfake import evidence as evidence_lib
from mmdeepfake.config import PreprocessConfig
from mmdeepfake.config_check import check_num_frames
from mmdeepfake.domain import DomainCheck
from mmdeepfake.encoders import EncoderOutput
from mmdeepfake.errors import (
    ConfigError,
    MmDeepfakeError,
    NoAudioTrackError,
    NoFaceFoundError,
    SilentAudioError,
)
from mmdeepfake.labels import EMOTIONS
from mmdeepfake.media import features
from mmdeepfake.media.decode import MediaSource
from mmdeepfake.media.faces import FaceDetector
from mmdeepfake.model import EmotionConsistencyModel
from mmdeepfake.prediction import Face, ModelInfo, Prediction, Segment, Verdict
from mmdeepfake.threads import may_overlap, run_alongside, torch_threads

MODALITIES = ("image", "audio")
ON_UNFAMILIAR = ("uncertain", "warn")
REQUIRE = ("any", "both")
# A one-modality head below this validation ROC-AUC is reported as not informative.
INFORMATIVE_AUC = 0.6
# Errors meaning that a modality is simply not in the input (not that the input is broken):
# with require="any" the other modality is scored alone.
_MISSING_MODALITY = (NoAudioTrackError, SilentAudioError, NoFaceFoundError)
_ABSENCE: dict[type[MmDeepfakeError], str] = {
    NoAudioTrackError: "the video has no sound track",
    SilentAudioError: "the sound is silent",
    NoFaceFoundError: "no face was found",
}
# What each modality reads, as warnings name it to a person.
_NOUN = {"image": "face", "audio": "voice"}

Result = TypeVar("Result")
ImageWork = Callable[[], evidence_lib.ImageEvidence]
AudioWork = Callable[[], evidence_lib.AudioEvidence]
EncodedAudio = tuple[evidence_lib.AudioEvidence, EncoderOutput]


@dataclass(frozen=True)
class PipelineResult:
    """What :meth:`DetectionPipeline.run` returns: the prediction and, on request, the media.

    ``crops`` are the (F, 224, 224, 3) uint8 face crops the image encoder read, one per entry
    of ``prediction.faces`` and in its order; ``wave`` is the mono float32 voice at
    ``preprocess.sample_rate`` that the audio encoder heard. A modality that was not scored has
    no crops (F = 0) or an empty voice. Both are None unless ``keep_media=True`` was asked.
    """

    prediction: Prediction
    crops: np.ndarray | None = None
    wave: np.ndarray | None = None


@dataclass
class GatheredMedia:
    """The CPU half of one prediction (:meth:`DetectionPipeline.gather`): what the network reads.

    Each half is its evidence (face crops as uint8, the voice with its windows), the typed
    error saying why that modality is missing from the input (no face, no sound track, silent
    sound; only with ``require="any"``), or None when it was not given. ``seconds`` is the time
    spent gathering, which the prediction's ``timings["total"]`` counts. Picklable: it travels
    from a CPU worker to the model's.
    """

    image: evidence_lib.ImageEvidence | MmDeepfakeError | None
    audio: evidence_lib.AudioEvidence | MmDeepfakeError | None
    source: str | None
    seconds: float


@dataclass(frozen=True)
class MediaGatherer:
    """Decoding, face finding and voice windows as a model's preprocessing asks, no network.

    Built by :meth:`DetectionPipeline.gatherer`; small and picklable, so a CPU worker can
    gather media for a model it never loads. The face detector is built on first use, once per
    process and settings.
    """

    preprocess: PreprocessConfig
    face_margin: float
    device: str = "cpu"

    def face_detector(self) -> FaceDetector:
        """The shared face detector with the preprocessing's settings on ``device``."""
        return FaceDetector.shared(self.device, **self.preprocess.face_detector_kwargs())

    def gather(
        self,
        video: MediaSource | None = None,
        *,
        image: MediaSource | None = None,
        images: Sequence[MediaSource] | None = None,
        audio: MediaSource | None = None,
        num_frames: int | None = None,
        detect_faces: bool = True,
        require: str = "any",
    ) -> GatheredMedia:
        """Decode the media, find the faces and cut the voice: the arguments of
        ``Detector.predict`` that concern the media.

        Raises:
            MmDeepfakeError: the same error ``Detector.predict`` raises for these media before
                the network runs (unreadable media, no modality left to score, bad options).
        """
        _check_require(require)
        started = time.perf_counter()
        image_work, audio_work = self.plan(
            video, image, images, audio, num_frames, detect_faces, require
        )
        strict = require == "both"
        image_half, audio_half = run_alongside(
            _work_or_nothing(audio_work, lambda w: w(), strict),
            _work_or_nothing(image_work, lambda w: w(), strict),
            overlap=may_overlap(torch.device(self.device)),
        )
        _raise_if_nothing_left(image_half, audio_half, image_work, audio_work)
        return GatheredMedia(
            image_half,
            audio_half,
            _describe_source(_first_given(video, image, images, audio)),
            time.perf_counter() - started,
        )

    def plan(
        self,
        video: MediaSource | None,
        image: MediaSource | None,
        images: Sequence[MediaSource] | None,
        audio: MediaSource | None,
        num_frames: int | None,
        detect_faces: bool,
        require: str = "any",
    ) -> tuple[ImageWork | None, AudioWork | None]:
        """Check the media arguments; return the two halves of the work, (image, audio),
        either of which is None when that modality was not given."""
        stills = [image] if image is not None else list(images or [])
        if image is not None and images:
            raise ConfigError("give either image= or images=, not both")
        faces = self.face_detector()
        margin = self.face_margin
        if video is not None:
            if stills or audio is not None:
                raise ConfigError("give either a video, or image(s) with audio, not both")
            default = self.preprocess.num_frames
            frames = check_num_frames(default if num_frames is None else num_frames)
            return (
                partial(
                    evidence_lib.image_evidence_from_video,
                    video,
                    num_frames=frames,
                    detect_faces=detect_faces,
                    detector=faces,
                    margin=margin,
                ),
                partial(evidence_lib.audio_evidence_from_video, video),
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
        image_work = (
            partial(
                evidence_lib.image_evidence_from_images,
                stills,
                detect_faces=detect_faces,
                detector=faces,
                margin=margin,
            )
            if stills
            else None
        )
        audio_work = (
            partial(evidence_lib.audio_evidence_from_recording, audio)
            if audio is not None
            else None
        )
        return image_work, audio_work


@dataclass(frozen=True)
class _Request:
    """The caller's options for one prediction, passed from run to the scoring step."""

    threshold: float
    abstain_below: float | None
    on_unfamiliar: str
    source: str | None
    started: float


class DetectionPipeline:
    """Runs a network on media: decoding, faces, voice windows, threads, scoring, explanation.

    Args:
        model: the network that scores face crops and voice windows.
        preprocess: how media become the network's inputs (frames per video, which a call may
            override; face-detector settings and crop margin; crop size and normalisation).
        threshold: fake probability at or above which the verdict is "fake" (a call may
            override it).
        temperature: calibration temperature of the fused logit.
        metadata: the model's metadata; ``modality_calibration`` and ``val_metrics`` calibrate
            and qualify the one-modality verdicts.
        model_info: which model this is, as every prediction reports it.
        model_notes: warnings every verdict of this model carries (random or synthetic-only
            weights).
    """

    def __init__(
        self,
        model: EmotionConsistencyModel,
        *,
        preprocess: PreprocessConfig | None = None,
        threshold: float = 0.5,
        temperature: float = 1.0,
        metadata: Mapping[str, Any] | None = None,
        model_info: ModelInfo | None = None,
        model_notes: Sequence[str] = (),
    ) -> None:
        self.model = model
        self.preprocess = preprocess or PreprocessConfig()
        self.threshold = float(threshold)
        self.temperature = float(temperature)
        self.metadata: Mapping[str, Any] = dict(metadata or {})
        self.model_info = model_info or ModelInfo(
            name="untrained", training_data="not recorded", synthetic=False
        )
        self.model_notes = list(model_notes)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def fusion_name(self) -> str:
        return str(self.model.config["fusion"])

    @property
    def face_margin(self) -> float:
        """The framing of face crops: ``preprocess.face_margin``, else the image encoder's
        declared margin (``EmotionEncoder.face_margin``), as the encoder was trained."""
        margin = self.preprocess.face_margin
        return self.model.image_encoder.face_margin if margin is None else margin

    def face_detector(self) -> FaceDetector:
        """The shared face detector with the preprocessing's settings on the model's device
        (the cascade runs there too)."""
        return self.gatherer().face_detector()

    def gatherer(self, device: str | torch.device | None = None) -> MediaGatherer:
        """The CPU half of this pipeline, without the network: decoding and face finding as
        this model was trained, with the face detector on ``device`` (default: the model's)."""
        where = self.device if device is None else torch.device(device)
        return MediaGatherer(self.preprocess, self.face_margin, str(where))

    # --- the public steps ------------------------------------------------------------------------

    def run(
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
        keep_media: bool = False,
    ) -> PipelineResult:
        """Detect a deepfake in the media; the arguments are those of ``Detector.predict``.

        With ``keep_media`` the result also holds the face crops and the voice that were
        scored (see :class:`PipelineResult`); without it they are freed as soon as the
        prediction is built (a long recording's voice is large).

        Raises:
            MmDeepfakeError: a subclass saying what is wrong with the input or the options.
        """
        threshold = self.check_options(threshold, abstain_below, on_unfamiliar)
        _check_require(require)
        started = time.perf_counter()
        image_work, audio_work = self.gatherer().plan(
            video, image, images, audio, num_frames, detect_faces, require
        )
        caller_threads = torch.get_num_threads()
        strict = require == "both"
        image_half: evidence_lib.ImageEvidence | MmDeepfakeError | None
        audio_half: EncodedAudio | MmDeepfakeError | None
        image_half, audio_half = run_alongside(
            _work_or_nothing(
                audio_work, lambda w: self._encode_audio_half(w, caller_threads), strict
            ),
            _work_or_nothing(image_work, lambda w: w(), strict),
            overlap=may_overlap(self.device),
        )
        source = _describe_source(_first_given(video, image, images, audio))
        absent = _raise_if_nothing_left(image_half, audio_half, image_work, audio_work)
        request = _Request(threshold, abstain_below, on_unfamiliar, source, started)
        # The scoring steps are plain methods run under inference mode here, not decorated,
        # so that mutation testing (which skips decorated functions) reaches them.
        with torch.inference_mode():
            return self._score_halves(image_half, audio_half, absent, request, keep_media)

    def gather(
        self,
        video: MediaSource | None = None,
        *,
        image: MediaSource | None = None,
        images: Sequence[MediaSource] | None = None,
        audio: MediaSource | None = None,
        num_frames: int | None = None,
        detect_faces: bool = True,
        require: str = "any",
    ) -> GatheredMedia:
        """The CPU half of :meth:`run`: decode, find faces, cut the voice (no network).

        Score the result with :meth:`score_gathered`, here or in another process; together
        they give the prediction :meth:`run` gives. See :meth:`MediaGatherer.gather`.
        """
        return self.gatherer().gather(
            video,
            image=image,
            images=images,
            audio=audio,
            num_frames=num_frames,
            detect_faces=detect_faces,
            require=require,
        )

    def score_gathered(
        self,
        gathered: GatheredMedia,
        *,
        threshold: float | None = None,
        abstain_below: float | None = None,
        on_unfamiliar: str = "uncertain",
    ) -> Prediction:
        """The network half of :meth:`run`: encode the voice and the faces gathered by
        :meth:`gather`, fuse them and explain the verdict (arguments as ``Detector.predict``).

        Raises:
            ConfigError: an option is out of range.
        """
        threshold = self.check_options(threshold, abstain_below, on_unfamiliar)
        started = time.perf_counter() - gathered.seconds
        audio_half: EncodedAudio | MmDeepfakeError | None
        if isinstance(gathered.audio, evidence_lib.AudioEvidence):
            audio_half = self._encode_voice(gathered.audio, torch.get_num_threads())
        else:
            audio_half = gathered.audio
        absent = _missing(gathered.image, gathered.audio)
        request = _Request(threshold, abstain_below, on_unfamiliar, gathered.source, started)
        with torch.inference_mode():
            return self._score_halves(gathered.image, audio_half, absent, request, False).prediction

    def check_options(
        self, threshold: float | None, abstain_below: float | None, on_unfamiliar: str
    ) -> float:
        """Check the verdict options of a prediction; return the threshold it uses.

        Raises:
            ConfigError: an option is out of range.
        """
        threshold = self.threshold if threshold is None else float(threshold)
        if not 0.0 <= threshold <= 1.0:
            raise ConfigError(f"threshold must be between 0 and 1, got {threshold}")
        if abstain_below is not None and not 0.5 <= abstain_below <= 1.0:
            raise ConfigError(f"abstain_below must be between 0.5 and 1, got {abstain_below}")
        if on_unfamiliar not in ON_UNFAMILIAR:
            raise ConfigError(
                f"on_unfamiliar must be one of {ON_UNFAMILIAR}, got {on_unfamiliar!r}"
            )
        return threshold

    def _score_halves(
        self,
        image_half: evidence_lib.ImageEvidence | MmDeepfakeError | None,
        audio_half: EncodedAudio | MmDeepfakeError | None,
        absent: Mapping[str, MmDeepfakeError],
        request: _Request,
        keep_media: bool,
    ) -> PipelineResult:
        """Score both halves together, or the one that was given or could be read."""
        if isinstance(image_half, evidence_lib.ImageEvidence) and isinstance(audio_half, tuple):
            voice, audio_out = audio_half
            evidence = evidence_lib.combine(image_half, voice)
            prediction = self._score(evidence, audio_out, request)
            return _result(prediction, keep_media, evidence.crops, evidence.wave)
        if isinstance(image_half, evidence_lib.ImageEvidence):
            reason = _absence(absent.get("audio"), "no voice was given")
            prediction = self._score_image_alone(image_half, reason, request)
            return _result(prediction, keep_media, image_half.crops, None)
        assert isinstance(audio_half, tuple)  # the plan gave at least one half, absent ones raised
        voice, audio_out = audio_half
        reason = _absence(absent.get("image"), "no face image was given")
        prediction = self._score_audio_alone(voice, audio_out, reason, request)
        return _result(prediction, keep_media, None, voice.wave)

    def encode(
        self, faces: torch.Tensor, waves: torch.Tensor
    ) -> tuple[EncoderOutput, EncoderOutput]:
        """Both encoders' forward passes on face crops (F,3,224,224) and voice windows (W,S),
        one after the other, under the thread settings a prediction uses (benchmarks time
        this alone).

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

    # --- gathering the evidence ----------------------------------------------------------------

    def _encode_audio_half(self, work: AudioWork, caller_threads: int) -> EncodedAudio:
        """The audio half, on a helper thread: decode the audio, cut it, run the voice encoder.

        One intra-op thread (see :meth:`encode`); the caller's count is restored afterwards,
        because changing it here also changes the default of threads that start later.
        """
        return self._encode_voice(work(), caller_threads)

    def _encode_voice(self, voice: evidence_lib.AudioEvidence, caller_threads: int) -> EncodedAudio:
        """Run the voice encoder on the voice's windows (see :meth:`_encode_audio_half`)."""
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

    def _encode_faces(self, crops: np.ndarray, timings: dict[str, float]) -> EncoderOutput:
        """Face crops -> the image encoder's output, timing the tensor copy and the encoder."""
        device = self.device
        start = time.perf_counter()
        preprocess = self.preprocess
        tensor = features.faces_to_tensor(
            crops, size=preprocess.image_size, mean=preprocess.image_mean, std=preprocess.image_std
        )
        batch = _to_device(tensor, device)
        timings["features"] = timings.get("features", 0.0) + _elapsed(start, device)
        start = time.perf_counter()
        out = self.model.encode_image(batch)
        timings["image_encoder"] = _elapsed(start, device)
        return out

    # --- scoring and explaining ----------------------------------------------------------------

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

        segment_logits = out.fake_logit.float().cpu() / self.temperature
        segment_probs = torch.sigmoid(segment_logits).numpy()
        face_probs_per_crop = torch.softmax(image_out.emotion_logits.float(), dim=-1).cpu().numpy()
        face_probs_per_segment = (
            torch.softmax(out.face_emotion_logits.float(), dim=-1).cpu().numpy()
        )
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

    def _score_image_alone(
        self, half: evidence_lib.ImageEvidence, reason: str, request: _Request
    ) -> Prediction:
        """Score the faces alone with the image head (see :meth:`_score_alone`)."""
        out = self._encode_faces(half.crops, half.timings)
        duration = None if half.duration is None else round(float(half.duration), 3)
        return self._score_alone(
            "image",
            out,
            half.timings,
            half.warnings,
            reason,
            request,
            duration,
            lambda emotions: _faces(half, emotions),
        )

    def _score_audio_alone(
        self,
        half: evidence_lib.AudioEvidence,
        out: EncoderOutput,
        reason: str,
        request: _Request,
    ) -> Prediction:
        """Score the voice alone with the audio head (see :meth:`_score_alone`)."""
        duration = round(float(len(half.wave) / self.preprocess.sample_rate), 3)
        return self._score_alone(
            "audio",
            out,
            half.timings,
            half.warnings,
            reason,
            request,
            duration,
            lambda emotions: [],
        )

    def _score_alone(
        self,
        modality: str,
        out: EncoderOutput,
        timings: dict[str, float],
        half_warnings: list[str],
        reason: str,
        request: _Request,
        duration: float | None,
        faces: Callable[[np.ndarray], list[Face]],
    ) -> Prediction:
        """Score one modality with its own head (``EmotionConsistencyModel.head_logit``).

        The head's logit is divided by the head's own temperature, fitted on the validation
        split with the guard (``metadata["modality_calibration"]``), or by the model's
        temperature for models saved without one.
        """
        device = self.device
        start = time.perf_counter()
        logits = self.model.head_logit(modality, out.embedding).float().cpu()
        timings["fusion"] = _elapsed(start, device)
        calibration = (self.metadata.get("modality_calibration") or {}).get(modality) or {}
        temperature = float(calibration.get("temperature") or self.temperature)
        fake_probability = float(torch.sigmoid(logits.mean() / temperature))
        emotions = torch.softmax(out.emotion_logits.float(), dim=-1).cpu().numpy()
        domain = {modality: self.model.domain_guard.check(modality, out.embedding)}
        what = _NOUN[modality]
        alone = (
            f"only the {what} was analysed ({reason}): the emotion-consistency cue, which "
            f"compares face and voice, was unavailable, so the verdict comes from the "
            f"{what}-only head"
        )
        warnings = [*half_warnings, alone]
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
            faces=faces(emotions),
            warnings=warnings,
            source=request.source,
            duration=duration,
            timings=_timings(timings, request.started),
            modalities=[modality],
            domain={m: check.to_dict() for m, check in domain.items()},
            model=self.model_info,
        )

    def _verdict(
        self,
        fake_probability: float,
        domain: dict[str, DomainCheck],
        request: _Request,
        warnings: list[str],
    ) -> Verdict:
        """The label, after the guard and the abstention bound; adds the matching warnings."""
        warnings.extend(self.model_notes)
        unfamiliar = [m for m, check in domain.items() if check.familiar is False]
        for modality in unfamiliar:
            check = domain[modality]
            warnings.append(
                f"the {_NOUN[modality]} is unlike anything this model was trained on (distance "
                f"{check.distance:.1f}, limit {check.limit:.1f}): its verdict on this input is "
                "not evidence"
                + (
                    "; labelled uncertain, with the probability still reported"
                    if request.on_unfamiliar == "uncertain"
                    else ""
                )
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


def _work_or_nothing(
    work: Callable[[], Any] | None,
    finish: Callable[[Any], Result],
    strict: bool,
) -> Callable[[], Result | MmDeepfakeError | None]:
    """One half for run_alongside: None when not given; with ``strict`` off, a missing
    modality's error is returned instead of raised."""
    if work is None:
        return lambda: None

    def attempt() -> Result | MmDeepfakeError | None:
        try:
            return finish(work)
        except _MISSING_MODALITY as exc:
            if strict:
                raise
            return exc

    return attempt


def _check_require(require: str) -> None:
    if require not in REQUIRE:
        raise ConfigError(f"require must be one of {REQUIRE}, got {require!r}")


def _raise_if_nothing_left(
    image_half: object, audio_half: object, image_work: object, audio_work: object
) -> dict[str, MmDeepfakeError]:
    """The modalities missing from the input, by name; raises when none is left to score."""
    absent = _missing(image_half, audio_half)
    if len(absent) == 2 or (absent and (image_work is None or audio_work is None)):
        raise absent.get("audio") or absent["image"]  # the voice's error, as run_alongside
    return absent


def _missing(image_half: object, audio_half: object) -> dict[str, MmDeepfakeError]:
    """The errors of the halves that are missing from the input, by modality."""
    return {
        m: r
        for m, r in (("image", image_half), ("audio", audio_half))
        if isinstance(r, MmDeepfakeError)
    }


def _first_given(
    video: MediaSource | None,
    image: MediaSource | None,
    images: Sequence[MediaSource] | None,
    audio: MediaSource | None,
) -> Any:
    """The media argument a prediction names as its source."""
    return video if video is not None else (image if image is not None else images or audio)


def _absence(error: MmDeepfakeError | None, given_alone: str) -> str:
    """Why a modality was not scored: what its error says is missing, or that it was not given."""
    return given_alone if error is None else _ABSENCE[type(error)]


def _result(
    prediction: Prediction, keep_media: bool, crops: np.ndarray | None, wave: np.ndarray | None
) -> PipelineResult:
    if not keep_media:
        return PipelineResult(prediction)
    if crops is None:
        crops = np.zeros((0, features.IMAGE_SIZE, features.IMAGE_SIZE, 3), dtype=np.uint8)
    if wave is None:
        wave = np.zeros(0, dtype=np.float32)
    return PipelineResult(prediction, crops=crops, wave=wave)


def _faces(
    half: evidence_lib.Evidence | evidence_lib.ImageEvidence, probs: np.ndarray
) -> list[Face]:
    return [
        Face(
            frame_index=int(frame),
            time=None if t is None else round(float(t), 3),
            box=(
                round(float(box.x1), 1),
                round(float(box.y1), 1),
                round(float(box.x2), 1),
                round(float(box.y2), 1),
            ),
            score=round(float(box.score), 4),
            emotions=_emotion_dict(probs[i]),
        )
        for i, (frame, t, box) in enumerate(zip(half.face_frames, half.face_times, half.boxes))
    ]


def _timings(timings: dict[str, float], started: float) -> dict[str, float]:
    return {
        **{k: round(v, 4) for k, v in timings.items()},
        "total": round(time.perf_counter() - started, 4),
    }


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
