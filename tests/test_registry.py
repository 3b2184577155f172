"""The name -> builder registry used for encoders and fusion strategies."""

from __future__ import annotations

import subprocess
import sys

import pytest

from mmdeepfake.errors import ConfigError
from mmdeepfake.registry import Registry


def test_register_create_and_names():
    reg: Registry[tuple] = Registry("widget")

    @reg.register("pair")
    def make_pair(a: int, b: int = 2) -> tuple:
        return (a, b)

    assert reg.names() == ("pair",)
    assert "pair" in reg and "other" not in reg and len(reg) == 1
    assert reg.create("pair", a=1) == (1, 2)
    assert reg.get("pair") is make_pair


def test_duplicate_name_is_rejected():
    reg: Registry[int] = Registry("widget")
    reg.register("x")(int)
    with pytest.raises(ValueError, match="already registered"):
        reg.register("x")(float)


def test_unknown_name_lists_the_known_ones():
    reg: Registry[int] = Registry("widget")
    reg.register("alpha")(int)
    reg.register("beta")(int)
    with pytest.raises(ConfigError, match=r"Unknown widget 'gamma'.*alpha, beta"):
        reg.create("gamma")


@pytest.mark.slow
def test_library_registries_hold_every_part():
    from mmdeepfake.encoders import ENCODERS
    from mmdeepfake.fusion import FUSIONS

    assert set(ENCODERS.names()) == {"resnet18", "cnn_lstm", "fer2013", "hf_image", "hf_audio"}
    assert set(FUSIONS.names()) == {"early", "mid", "late", "adaptive", "attention"}
    with pytest.raises(ConfigError, match="resnet18"):
        ENCODERS.create("resnet50")


def test_registry_module_stays_light():
    code = "import sys, mmdeepfake.registry; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
