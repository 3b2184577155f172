"""Encoders: output shapes, gradients, pooling, the transformers ResNet converter, HF wrappers.

The Hugging Face Hub is not reachable here: every transformers model is built offline from a
config with random weights.
"""

from __future__ import annotations

import pytest
import torch

from mmdeepfake.encoders import EncoderOutput, create_encoder, load_transformers_resnet_weights
from mmdeepfake.encoders.hf import UNMAPPED_OFFSET, map_labels_to_emotions
from mmdeepfake.errors import CheckpointError, ConfigError
from mmdeepfake.labels import EMOTION_INDEX, NUM_EMOTIONS
from mmdeepfake.media.features import WINDOW_SAMPLES
from tiny_models import TINY_VIT_SHAPE

TINY = {
    "resnet18": ({"width": 4, "embed_dim": 16}, (2, 3, 224, 224), 49),
    "cnn_lstm": ({"width": 4, "hidden": 8, "embed_dim": 16}, (2, WINDOW_SAMPLES), 32),
}

TINY_VIT = {
    **TINY_VIT_SHAPE,
    "id2label": {0: "Angry", 1: "hap", 2: "happiness", 3: "other"},
    "label2id": {"Angry": 0, "hap": 1, "happiness": 2, "other": 3},
}
TINY_WAV2VEC2 = {
    "model_type": "wav2vec2",
    "hidden_size": 16,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "intermediate_size": 32,
    "conv_dim": (8, 8),
    "conv_stride": (5, 4),
    "conv_kernel": (10, 8),
    "num_feat_extract_layers": 2,
    "num_conv_pos_embeddings": 16,
    "num_conv_pos_embedding_groups": 2,
    "classifier_proj_size": 8,
    "id2label": {0: "neu", 1: "sad", 2: "fear"},
    "label2id": {"neu": 0, "sad": 1, "fear": 2},
}


def assert_finite_grads(module: torch.nn.Module) -> None:
    for name, param in module.named_parameters():
        if param.requires_grad:
            assert param.grad is not None, f"{name} got no gradient"
            assert torch.isfinite(param.grad).all(), f"{name} has a non-finite gradient"


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(TINY))
def test_encoder_shapes_and_gradients(name):
    torch.manual_seed(0)
    kwargs, shape, tokens = TINY[name]
    encoder = create_encoder(name, **kwargs)
    out = encoder(torch.randn(shape))
    assert out.embedding.shape == (2, 16)
    assert out.tokens.shape == (2, tokens, 16)
    assert out.emotion_logits.shape == (2, NUM_EMOTIONS)
    (
        out.embedding.sum() + out.tokens.pow(2).mean() + out.emotion_logits.logsumexp(-1).sum()
    ).backward()
    assert_finite_grads(encoder)


@pytest.mark.parametrize("name", sorted(TINY))
def test_encoder_rejects_wrong_rank(name):
    kwargs, shape, _ = TINY[name]
    with pytest.raises(ValueError, match="expected"):
        create_encoder(name, **kwargs)(torch.zeros(shape[1:]))


@pytest.mark.slow
def test_cnn_lstm_mean_pooling_and_bad_pooling():
    encoder = create_encoder("cnn_lstm", width=4, hidden=8, embed_dim=16, pooling="mean").eval()
    out = encoder(torch.randn(1, WINDOW_SAMPLES))
    torch.testing.assert_close(out.embedding, out.tokens.mean(1))
    with pytest.raises(ConfigError, match="pooling"):
        create_encoder("cnn_lstm", pooling="max")


def test_resnet18_default_has_the_resnet18_trunk():
    encoder = create_encoder("resnet18")  # width 64: the ImageNet ResNet-18 shape
    assert sum(p.numel() for p in encoder.backbone.parameters()) == 11_176_512


def _random_transformers_resnet(width: int, classifier: bool = False) -> torch.nn.Module:
    from transformers import ResNetConfig, ResNetForImageClassification, ResNetModel

    config = ResNetConfig(
        layer_type="basic",
        depths=[2, 2, 2, 2],
        embedding_size=width,
        hidden_sizes=[width, 2 * width, 4 * width, 8 * width],
        num_labels=5,
    )
    model = (ResNetForImageClassification if classifier else ResNetModel)(config).eval()
    generator = torch.Generator().manual_seed(1)
    for module in model.modules():  # non-trivial BatchNorm statistics so a mix-up would show
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.copy_(torch.randn(module.running_mean.shape, generator=generator))
            module.running_var.copy_(
                torch.rand(module.running_var.shape, generator=generator) + 0.5
            )
            module.weight.data.copy_(torch.randn(module.weight.shape, generator=generator))
            module.bias.data.copy_(torch.randn(module.bias.shape, generator=generator))
    return model


@pytest.mark.slow
@pytest.mark.parametrize("classifier", [False, True])
def test_transformers_resnet_weights_match_numerically(classifier):
    hf = _random_transformers_resnet(8, classifier)
    encoder = create_encoder("resnet18", width=8, embed_dim=16).eval()
    load_transformers_resnet_weights(encoder, hf.state_dict())
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        body = hf.resnet if classifier else hf
        expected = body(x).last_hidden_state
        torch.testing.assert_close(encoder.backbone(x), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_transformers_resnet_width_mismatch_is_a_checkpoint_error():
    encoder = create_encoder("resnet18", width=4, embed_dim=16)
    with pytest.raises(CheckpointError, match="width"):
        load_transformers_resnet_weights(encoder, _random_transformers_resnet(8).state_dict())
    with pytest.raises(CheckpointError, match="basic-block"):
        load_transformers_resnet_weights(
            encoder, {"encoder.stages.0.layers.0.layer.2.x": torch.zeros(1)}
        )


def test_pool_averages_rows_per_group():
    out = EncoderOutput(
        embedding=torch.tensor([[1.0], [3.0], [5.0]]),
        tokens=torch.arange(6.0).view(3, 2, 1),
        emotion_logits=torch.tensor([[0.0] * 7, [2.0] * 7, [4.0] * 7]),
    )
    pooled = out.pool([[0, 1], [2], [0, 1, 2]])
    torch.testing.assert_close(pooled.embedding, torch.tensor([[2.0], [5.0], [3.0]]))
    torch.testing.assert_close(pooled.tokens[0, :, 0], torch.tensor([1.0, 2.0]))
    torch.testing.assert_close(pooled.emotion_logits[2], torch.full((7,), 2.0))
    with pytest.raises(ValueError, match="empty group"):
        out.pool([[0], []])
    with pytest.raises(IndexError):
        out.pool([[3]])


def test_label_aliases_map_to_emotions():
    mapping = map_labels_to_emotions(
        {
            0: "hap",
            1: "ANG",
            2: "neu",
            3: "sad",
            4: "fear",
            5: "Disgust",
            6: "surprise",
            7: "calm",
            8: "xyz",
        }
    )
    expected = ["happy", "angry", "neutral", "sad", "fearful", "disgusted", "surprised", "neutral"]
    assert mapping == {i: EMOTION_INDEX[e] for i, e in enumerate(expected)}


@pytest.mark.slow
def test_hf_image_maps_model_labels_to_emotions():
    torch.manual_seed(0)
    encoder = create_encoder("hf_image", config=TINY_VIT, embed_dim=16).eval()
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        out = encoder(x)
        logits = encoder.model(**encoder._model_inputs(x)).logits
    assert out.tokens.shape == (2, 17, 16) and out.embedding.shape == (2, 16)
    emo = out.emotion_logits
    # The residual head starts at zero, so the output is exactly the pretrained mapping.
    torch.testing.assert_close(emo[:, EMOTION_INDEX["angry"]], logits[:, 0])
    torch.testing.assert_close(emo[:, EMOTION_INDEX["happy"]], logits[:, 1:3].logsumexp(-1))
    floor = torch.minimum(logits[:, 0], logits[:, 1:3].logsumexp(-1)) - UNMAPPED_OFFSET
    torch.testing.assert_close(emo[:, EMOTION_INDEX["sad"]], floor)


@pytest.mark.slow
def test_hf_image_without_matching_labels_trains_its_own_head():
    resnet = {
        "model_type": "resnet",
        "embedding_size": 8,
        "hidden_sizes": [8, 16],
        "depths": [1, 1],
        "layer_type": "basic",
    }
    encoder = create_encoder("hf_image", config=resnet, embed_dim=16)
    out = encoder(torch.randn(2, 3, 224, 224))
    assert encoder.mapped_emotions == [] and out.tokens.shape == (2, 28 * 28, 16)
    out.emotion_logits.logsumexp(-1).sum().backward()
    assert encoder.emotion_head[1].weight.grad.abs().sum() > 0


@pytest.mark.slow
def test_hf_audio_wav2vec2_shapes_and_gradients():
    torch.manual_seed(0)
    encoder = create_encoder("hf_audio", config=TINY_WAV2VEC2, embed_dim=16)
    out = encoder(torch.randn(2, WINDOW_SAMPLES))
    assert out.embedding.shape == (2, 16) and out.tokens.shape[0] == 2
    assert out.emotion_logits.shape == (2, NUM_EMOTIONS)
    assert encoder.mapped_emotions == sorted(
        EMOTION_INDEX[e] for e in ("neutral", "sad", "fearful")
    )
    (out.embedding.sum() + out.emotion_logits.logsumexp(-1).sum()).backward()
    assert_finite_grads(encoder)


def test_hf_encoder_errors_are_actionable():
    with pytest.raises(ConfigError, match="model_id"):
        create_encoder("hf_audio")
    with pytest.raises(ConfigError, match="model_type"):
        create_encoder("hf_image", config={"hidden_size": 8})
    # HF_HUB_OFFLINE=1 (conftest): a hub id that is not cached fails with a CheckpointError.
    with pytest.raises(CheckpointError, match="Hub"):
        create_encoder("hf_image", model_id="mmdeepfake-tests/not-a-model")
