"""Model folders and settings crafted to exhaust memory, run pickles, or wait on a dead network.

Each loader is driven the way an attacker would: a real folder with a real config.json and
real weights, one field changed. Loads that could allocate run in a subprocess under a memory
watch (psutil), so a regression fails the test instead of taking the machine down.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest
import torch

from mmdeepfake import Detector
from mmdeepfake.config_check import MAX_NUM_FRAMES
from mmdeepfake.errors import CheckpointError, ConfigError
from tiny_models import TINY_ARCH, TINY_VIT_SHAPE

REPO = Path(__file__).resolve().parents[1]
MEMORY_CAP = 1_500_000_000  # the watch kills a child above this resident size
TINY_VIT = {
    **TINY_VIT_SHAPE,
    "id2label": {"0": "happy", "1": "sad"},
    "label2id": {"happy": 0, "sad": 1},
}


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("saved")
    Detector(**TINY_ARCH).save_pretrained(folder)
    return folder


def _copy_with(saved: Path, dest: Path, change) -> Path:
    """A copy of a saved detector whose config.json went through ``change``."""
    dest.mkdir()
    (dest / "model.safetensors").write_bytes((saved / "model.safetensors").read_bytes())
    config = json.loads((saved / "config.json").read_text())
    change(config)
    (dest / "config.json").write_text(json.dumps(config))
    return dest


def _load_in_watched_child(folder: Path) -> tuple[dict, int]:
    """Run Detector.from_pretrained(folder) in a child; return its report and peak RSS."""
    script = textwrap.dedent(
        f"""
        import json
        from memory_watch import high_water_mark
        from mmdeepfake import Detector
        from mmdeepfake.errors import MmDeepfakeError
        try:
            Detector.from_pretrained({str(folder)!r})
            report = {{"error": None}}
        except MmDeepfakeError as exc:
            report = {{"error": type(exc).__name__, "message": str(exc)}}
        report["peak_bytes"] = high_water_mark()
        print(json.dumps(report))
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO / "tests")])}
    child = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    watched = psutil.Process(child.pid)
    peak = 0
    deadline = time.monotonic() + 300  # a hang is a failure, not a wait
    while child.poll() is None:
        try:
            peak = max(peak, watched.memory_info().rss)  # now, for the watchdog
        except psutil.NoSuchProcess:
            break
        if peak > MEMORY_CAP or time.monotonic() > deadline:
            child.kill()
            child.wait()
            pytest.fail(f"loading {folder} took {peak} bytes or ran past the deadline")
        time.sleep(0.05)
    out, err = child.communicate()
    assert child.returncode == 0, err
    report = json.loads(out.strip().splitlines()[-1])
    return report, max(peak, report["peak_bytes"])


# --- config.json that asks for a huge model ------------------------------------------------------


@pytest.mark.slow
def test_a_huge_width_is_refused_before_anything_is_built(saved, tmp_path):
    folder = _copy_with(
        saved, tmp_path / "wide", lambda c: c["image_encoder_kwargs"].update(width=100_000)
    )
    assert (folder / "config.json").stat().st_size < 2048
    report, peak = _load_in_watched_child(folder)
    assert report["error"] == "ConfigError"
    assert "image_encoder_kwargs.width" in report["message"]
    assert peak < 800_000_000  # torch and mmdeepfake imported, no weights


@pytest.mark.slow
def test_a_width_in_range_but_too_many_parameters_is_refused(saved, tmp_path):
    # width 512 is within the per-field bound but builds ~700 million parameters (2.8 GB).
    folder = _copy_with(
        saved, tmp_path / "big", lambda c: c["image_encoder_kwargs"].update(width=512)
    )
    report, peak = _load_in_watched_child(folder)
    assert report["error"] == "ConfigError"
    assert "parameters" in report["message"]
    assert peak < 800_000_000


def test_a_config_larger_than_its_weights_is_refused_from_the_header(saved, tmp_path):
    # width 64 is a real ResNet-18 (45 MB); the weights on disk are for width 8.
    folder = _copy_with(
        saved, tmp_path / "mismatch", lambda c: c["image_encoder_kwargs"].update(width=64)
    )
    with pytest.raises(CheckpointError, match=r"stages\.0\.0\..* is \(8,\) in the weights"):
        Detector.from_pretrained(folder)


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("num_frames", 0, "num_frames must be between 1 and 256"),
        ("num_frames", 100_000_000, "num_frames must be between 1 and 256"),
        ("threshold", 1.5, "threshold must be a number between 0 and 1"),
        ("embed_dim", "32", "embed_dim must be a whole number"),
        ("image_encoder", "no-such-encoder", "image_encoder must be one of"),
        ("surprise", 1, "unknown detector settings"),
    ],
)
def test_config_values_are_checked_with_a_message(saved, tmp_path, field, value, message):
    folder = _copy_with(saved, tmp_path / "bad", lambda c: c.update({field: value}))
    with pytest.raises(ConfigError, match=message):
        Detector.from_pretrained(folder)


@pytest.mark.parametrize("num_frames", [0, -1, MAX_NUM_FRAMES + 1, int(1e8), 2.5, float("nan")])
def test_num_frames_is_bounded_in_the_constructor(num_frames):
    with pytest.raises(ConfigError, match="num_frames"):
        Detector(**TINY_ARCH, num_frames=num_frames)


def test_num_frames_is_bounded_when_changed_later():
    detector = Detector(**TINY_ARCH)
    with pytest.raises(ConfigError, match="num_frames"):
        detector.with_config(num_frames=0)
    assert detector.with_config(num_frames=MAX_NUM_FRAMES).num_frames == MAX_NUM_FRAMES


# --- hf encoders: only safetensors, only hub ids from a config ---------------------------------


class _Marker:
    """Unpickling this touches a file: proof that a pickle ran."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


def _hf_model_folder(folder: Path, weights: object) -> Path:
    """A transformers model folder whose only weights are a pytorch_model.bin (a pickle)."""
    import transformers

    folder.mkdir()
    config = transformers.AutoConfig.for_model(**TINY_VIT)
    config.save_pretrained(folder)
    torch.save(weights, folder / "pytorch_model.bin")
    return folder


@pytest.fixture
def hf_detector(tmp_path) -> Path:
    """A saved detector with an offline-built hf_image encoder."""
    folder = tmp_path / "hf-detector"
    Detector(
        image_encoder="hf_image",
        image_encoder_kwargs={"config": TINY_VIT, "pretrained": False},
        audio_encoder_kwargs=TINY_ARCH["audio_encoder_kwargs"],
        embed_dim=32,
    ).save_pretrained(folder)
    return folder


def _point_at(detector: Path, model_id: str) -> None:
    config = json.loads((detector / "config.json").read_text())
    config["image_encoder_kwargs"] = {"model_id": model_id}
    (detector / "config.json").write_text(json.dumps(config))


def test_a_config_naming_a_local_folder_is_not_followed(hf_detector, tmp_path, monkeypatch):
    marker = tmp_path / "pickle-ran"
    _hf_model_folder(tmp_path / "evil", {"weights": _Marker(marker)})
    monkeypatch.chdir(hf_detector)
    for spelling in ("../evil", str(tmp_path / "evil")):
        _point_at(hf_detector, spelling)
        with pytest.raises(ConfigError, match="local folders named inside a config"):
            Detector.from_pretrained(hf_detector)
    # A hub-id-shaped name that exists as a folder here is a local folder too.
    (hf_detector / "owner").mkdir()
    (tmp_path / "evil").rename(hf_detector / "owner" / "evil")
    _point_at(hf_detector, "owner/evil")
    with pytest.raises(ConfigError, match="local folders named inside a config"):
        Detector.from_pretrained(hf_detector)
    assert not marker.exists()


def test_a_pickle_is_never_loaded_even_from_a_folder_the_caller_names(hf_detector, tmp_path):
    marker = tmp_path / "pickle-ran"
    evil = _hf_model_folder(tmp_path / "evil", {"weights": _Marker(marker)})
    with pytest.raises(CheckpointError, match="model.safetensors"):
        Detector.from_pretrained(hf_detector, image_encoder_kwargs={"model_id": str(evil)})
    assert not marker.exists()


def test_plain_tensor_pickles_are_refused_too(hf_detector, tmp_path):
    """A pytorch_model.bin of plain tensors would load with torch's weights_only unpickler;
    mmdeepfake still refuses it: weights come from safetensors alone."""
    import transformers

    model = transformers.AutoModelForImageClassification.from_config(
        transformers.AutoConfig.for_model(**TINY_VIT)
    )
    benign = _hf_model_folder(tmp_path / "benign", model.state_dict())
    with pytest.raises(CheckpointError, match="model.safetensors"):
        Detector.from_pretrained(hf_detector, image_encoder_kwargs={"model_id": str(benign)})


# --- the hub out of reach ----------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed again when the block ends: connections refused


def _offline_env(cache: Path) -> dict[str, str]:
    """The hub out of reach: HF_ENDPOINT points at a closed loopback port, and HF_HUB_OFFLINE
    is unset, so the hub client really tries the network (and is refused)."""
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
    env.update(
        HF_ENDPOINT=f"http://127.0.0.1:{_closed_port()}",
        HF_HUB_CACHE=str(cache),
        PYTHONPATH=str(REPO / "src"),
    )
    return env


@pytest.mark.slow
def test_an_unreachable_hub_fails_fast_with_advice(tmp_path):
    script = textwrap.dedent(
        """
        import json, time
        from mmdeepfake import Detector, model_files
        from mmdeepfake.errors import HubUnreachableError
        started = time.monotonic()
        try:
            Detector.from_pretrained("user/name")
        except HubUnreachableError as exc:
            print(json.dumps({"elapsed": time.monotonic() - started, "message": str(exc),
                              "bound": (model_files.HUB_RETRIES + 1) * model_files.HUB_TIMEOUT_S
                              + model_files.HUB_RETRIES * model_files.HUB_RETRY_WAIT_S}))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        env=_offline_env(tmp_path / "cache"),
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    # Bounded by the call's own retry settings (huggingface_hub alone waits about 23 s).
    assert report["elapsed"] < report["bound"] + 2.0
    assert "not reachable" in report["message"]
    assert "Detector.from_pretrained('./my-model')" in report["message"]
    assert "Retrying" not in result.stderr


# --- the command line: flags, output, interrupts, unreadable inputs, dying workers --------------


def _predict(*args: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    return subprocess.Popen(
        [sys.executable, "-m", "mmdeepfake.cli.predict", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        **kwargs,
    )


def _finish(process: subprocess.Popen) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=600)
    return process.returncode, out, err


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    from mmdeepfake.testing import media as mf

    return mf.face_video(tmp_path_factory.mktemp("clip") / "face.mp4", seconds=2.0)


@pytest.mark.slow
@pytest.mark.parametrize(
    "flags, message",
    [
        (["--num-frames", "0"], "argument --num-frames: must be between 1 and 256, got 0"),
        (["--num-frames", "100000000"], "argument --num-frames: must be between 1 and 256"),
        (["--threshold", "1.5"], "argument --threshold: must be between 0 and 1, got 1.5"),
        (["--threshold", "nan"], "argument --threshold: must be between 0 and 1"),
        (["--device", "gpu"], "argument --device: 'gpu' is not a device"),
        (["--endpoint-url", "localhost:9000"], "argument --endpoint-url: 'localhost:9000' is not"),
        (["--workers", "100000"], "argument --workers: 100000 is more than this machine can run"),
        (["--workers", "0"], "argument --workers: must be at least 1, got 0"),
    ],
)
def test_bad_flags_are_one_line_usage_errors(flags, message, saved, clip):
    code, out, err = _finish(_predict(str(clip), "--model", str(saved), *flags))
    assert code == 2
    assert err.splitlines() == [err.strip()] and message in err
    assert out == ""


@pytest.mark.slow
def test_an_unwritable_output_is_refused_before_scoring(saved, clip, tmp_path):
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("a file, so nothing can be created under it")
    for fmt in ("jsonl", "json", "csv"):
        code, _out, err = _finish(
            _predict(
                str(clip),
                "--model",
                "/no/such/model",
                "--format",
                fmt,
                "--out",
                str(not_a_folder / "results"),
            )
        )
        # The model is not even looked for: the output is checked first.
        assert code == 2 and err.strip().startswith("error: cannot write --out"), err
        assert "nothing was scored" in err and len(err.splitlines()) == 1


@pytest.mark.slow
def test_an_oserror_on_one_input_is_a_record_and_the_batch_goes_on(saved, clip, tmp_path):
    too_long = tmp_path / ("x" * 300 + ".mp4")  # a file name beyond the system's 255 bytes
    code, out, err = _finish(
        _predict(
            str(too_long),
            str(clip),
            "--model",
            str(saved),
            "--num-frames",
            "2",
        )
    )
    assert code == 1, err
    bad, good = (json.loads(line) for line in out.splitlines())
    assert bad["error_type"] in ("MediaUnreadableError", "MediaNotFoundError")
    assert "name too long" in bad["error"].lower() or "not found" in bad["error"].lower()
    assert good["error"] is None and good["label"] in ("real", "fake")
    assert "Traceback" not in err


@pytest.mark.slow
def test_face_advice_names_the_flag_not_the_python_argument(saved, tmp_path):
    import numpy as np
    from PIL import Image

    from mmdeepfake.testing import media as mf

    sky = np.zeros((120, 160, 3), dtype=np.uint8)
    sky[..., 2] = 200
    Image.fromarray(sky).save(tmp_path / "sky.png")
    mf.write_audio(tmp_path / "voice.wav", mf.voice_like(seconds=2.0))
    pair = [
        "--pair",
        str(tmp_path / "sky.png"),
        str(tmp_path / "voice.wav"),
        "--model",
        str(saved),
        "--require",
        "both",
    ]  # with the default, a faceless pair is scored from the voice
    code, out, err = _finish(_predict(*pair))
    (record,) = [json.loads(line) for line in out.splitlines()]
    assert code == 1 and record["error_type"] == "NoFaceFoundError"
    assert "--no-detect-faces" in record["error"] and "detect_faces=False" not in record["error"]
    code, out, err = _finish(_predict(*pair, "--no-detect-faces"))
    assert code == 0, err


def _wait_for_lines(path: Path, count: int, process: subprocess.Popen, limit_s: float = 300):
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if path.exists() and len(path.read_text().splitlines()) >= count:
            return
        if process.poll() is not None:
            pytest.fail(f"the run ended early: {process.communicate()}")
        time.sleep(0.1)
    pytest.fail(f"{path} never reached {count} lines")


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["jsonl", "json"])
def test_ctrl_c_keeps_the_finished_records(saved, clip, tmp_path, fmt):
    import signal

    out = tmp_path / f"results.{fmt}"
    progress = tmp_path / "progress.jsonl"  # a second run's file, to know when one record is done
    inputs = [str(clip)] * 12
    args = ["--model", str(saved), "--num-frames", "8", "--no-progress"]
    if fmt == "jsonl":
        run = _predict(*inputs, *args, "--out", str(out))
        _wait_for_lines(out, 1, run)
    else:
        run = _predict(*inputs, *args, "--format", "json", "--out", str(out))
        # The JSON document appears only at the end; wait as long as one record takes.
        probe = _predict(str(clip), *args, "--out", str(progress))
        _wait_for_lines(progress, 1, probe)
        probe.wait()
        assert not out.exists()
    run.send_signal(signal.SIGINT)
    code, _, err = _finish(run)
    assert code == 130, err
    assert "interrupted" in err and "Traceback" not in err
    if fmt == "jsonl":
        records = [json.loads(line) for line in out.read_text().splitlines()]
    else:
        records = json.loads(out.read_text())
    assert 1 <= len(records) < len(inputs)
    assert all(r["error"] is None and r["label"] in ("real", "fake") for r in records)
    assert f"{len(records)} finished records" in err


@pytest.mark.slow
def test_a_killed_worker_costs_only_the_input_it_held(saved, clip, tmp_path):
    out = tmp_path / "results.jsonl"
    inputs = [str(clip)] * 6
    run = _predict(
        *inputs,
        "--model",
        str(saved),
        "--num-frames",
        "16",
        "--workers",
        "2",
        "--threads",
        "1",
        "--no-progress",
        "--out",
        str(out),
    )
    _wait_for_lines(out, 1, run)
    workers = [
        child
        for child in psutil.Process(run.pid).children()
        if "spawn_main" in " ".join(child.cmdline())
    ]
    assert len(workers) == 2
    workers[0].kill()  # SIGKILL, as the out-of-memory killer would
    code, _, err = _finish(run)
    assert code == 1, err
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["source"] for r in records] == inputs
    died = [r for r in records if r["error"]]
    assert len(died) == 1 and died[0]["error_type"] == "WorkerDiedError"
    assert "killed by signal 9" in died[0]["error"]
    assert "1 of 6 inputs failed" in err


# --- the demo page: only the models its operator offers -------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def offered(tmp_path_factory, saved) -> dict[str, Path]:
    """A models folder the operator offers, and detectors outside it that must stay unreachable."""
    root = tmp_path_factory.mktemp("demo")
    models = root / "models"
    models.mkdir()
    _copy_with(saved, models / "mine", lambda c: None)
    _copy_with(saved, models / "wide", lambda c: c["image_encoder_kwargs"].update(width=512))
    _copy_with(saved, root / "outside", lambda c: None)
    (models / "link").symlink_to(root / "outside")
    return {"models": models, "outside": root / "outside"}


@pytest.fixture(scope="module")
def demo(offered, saved):
    """demos/app.py as an operator starts it, on a free port; yields its URL."""
    pytest.importorskip("gradio")
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    server = subprocess.Popen(
        [
            sys.executable,
            str(REPO / "demos" / "app.py"),
            "--model",
            str(saved),
            "--models-dir",
            str(offered["models"]),
            "--port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=offered["models"].parent,
    )
    for line in server.stdout:  # the page prints its URL once it serves
        if "demo running at" in line:
            break
    else:
        pytest.fail("the demo exited before serving")
    yield f"http://127.0.0.1:{port}/"
    server.terminate()
    server.wait(timeout=30)


def _call_hidden(url: str, api_name: str, data: list) -> list:
    """Call an endpoint the page hides from its API listing, as a raw HTTP client can."""
    import httpx

    config = httpx.get(f"{url}config", timeout=30).json()
    (fn_index,) = [d["id"] for d in config["dependencies"] if d.get("api_name") == api_name]
    session = os.urandom(8).hex()
    joined = httpx.post(
        f"{url}gradio_api/queue/join",
        json={"data": data, "fn_index": fn_index, "session_hash": session},
        timeout=30,
    )
    assert joined.status_code == 200, joined.text
    with httpx.stream(
        "GET", f"{url}gradio_api/queue/data", params={"session_hash": session}, timeout=300
    ) as stream:
        for line in stream.iter_lines():
            if line.startswith("data:"):
                message = json.loads(line[5:])
                if message.get("msg") == "process_completed":
                    return message["output"]["data"]
    pytest.fail("no answer from the hidden endpoint")


def _load_status(url: str, spec: str) -> str:
    return _call_hidden(url, "load_model", [spec, None])[-1]


@pytest.mark.slow
def test_demo_loads_a_folder_under_models_dir(demo):
    status = _load_status(demo, "mine")
    assert status.startswith("**Loaded** `mine`")


@pytest.mark.slow
def test_demo_refuses_everything_else_without_revealing_what_exists(demo, offered, tmp_path):
    outside = offered["outside"]
    refusals = {
        spec: _load_status(demo, spec)
        for spec in (
            str(outside),
            str(tmp_path / "no-such-folder"),  # exists / does not exist
            "../outside",
            "link",
            "mine/../../outside",
            "~/.ssh",
            "/root/.ssh",
            "/etc",
            "user/name",  # a hub id, without --allow-hub
        )
    }
    for spec, status in refusals.items():
        assert "is not a model this page offers" in status, (spec, status)
        assert "Loaded" not in status
    # The same words for a folder that exists and one that does not: nothing to probe with.
    nowhere = str(tmp_path / "no-such-folder")
    assert refusals[str(outside)].replace(str(outside), "X") == refusals[nowhere].replace(
        nowhere, "X"
    )
    assert "does not load Hugging Face Hub ids" in refusals["user/name"]
    assert str(offered["models"]) not in "".join(refusals.values())


@pytest.mark.slow
def test_demo_refuses_a_crafted_folder_under_models_dir_without_building_it(demo, offered):
    status = _load_status(demo, "wide")
    assert "Could not load" in status and "parameters" in status
    assert str(offered["models"]) not in status


@pytest.mark.slow
def test_demo_escapes_error_messages_in_the_api(demo, tmp_path):
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    bogus = tmp_path / "<b>bold<b>.mp4"
    bogus.write_text("not a video\n")
    client = Client(demo, verbose=False)
    with pytest.raises(AppError) as caught:
        client.predict(handle_file(str(bogus)), 0.5, 4, None, api_name="/detect")
    message = str(caught.value)
    # Gradio drops "<" and ">" from upload names; the quotes around the name are what is left
    # to escape, and they must come back as entities.
    assert "&#x27;bboldb.mp4&#x27;" in message and "'" not in message


@pytest.mark.slow
@pytest.mark.parametrize("num_frames", [0, 100_000_000])
def test_demo_api_bounds_num_frames(demo, clip, num_frames):
    """The frames slider's range (1 to 64) holds for API callers too: Gradio checks it."""
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    client = Client(demo, verbose=False)
    with pytest.raises(AppError, match=r"(less than minimum value 1|greater than maximum value)"):
        client.predict(handle_file(str(clip)), 0.5, num_frames, None, api_name="/detect")


def test_hub_ids_only_with_allow_hub(saved):
    """The hub is unreachable here (HF_HUB_OFFLINE=1), so an allowed id fails at the download,
    with advice worded for the page."""
    sys.path.insert(0, str(REPO / "demos"))
    from mmdeepfake_demo.handlers import Handlers
    from mmdeepfake_demo.models import LoadedModel, ModelCatalog, ModelStore

    initial = LoadedModel("tiny", {"mid": Detector.from_pretrained(saved)})
    assert ModelCatalog(allow_hub=True).resolve("user/name") == "hf-hub:user/name"
    assert ModelCatalog(allow_hub=True).resolve("hf-hub:user/name") == "hf-hub:user/name"
    with pytest.raises(CheckpointError, match="not a model this page offers"):
        ModelCatalog(allow_hub=False).resolve("user/name")
    handlers = Handlers(ModelStore(initial, catalog=ModelCatalog(allow_hub=True)))
    status = handlers.load_model("user/name", None)[-1]
    assert "Hugging Face Hub is not reachable" in status
    assert "Pick a model this page offers" in status
    assert "Detector.from_pretrained" not in status


def _with_guard(saved: Path, dest: Path, image_dim: int) -> Path:
    """A copy of ``saved`` whose weights carry an unfamiliar-input guard of width ``image_dim``."""
    from safetensors.torch import load_file, save_file

    dest.mkdir()
    (dest / "config.json").write_text((saved / "config.json").read_text())
    state = load_file(str(saved / "model.safetensors"))
    state["model.domain_guard.image_means"] = torch.zeros(2, image_dim)
    state["model.domain_guard.image_precision"] = torch.eye(image_dim)
    state["model.domain_guard.image_limit"] = torch.tensor(3.0)
    save_file(state, str(dest / "model.safetensors"))
    return dest


def test_weights_with_a_guard_of_the_encoders_width_load(saved, tmp_path):
    width = Detector(**TINY_ARCH).model.image_encoder.embed_dim
    detector = Detector.from_pretrained(_with_guard(saved, tmp_path / "ok", width))
    assert detector.model.domain_guard.limit("image") == pytest.approx(3.0)


def test_a_guard_wider_than_the_encoder_is_refused_from_the_header(saved, tmp_path):
    width = Detector(**TINY_ARCH).model.image_encoder.embed_dim
    with pytest.raises(CheckpointError, match="domain_guard.image"):
        Detector.from_pretrained(_with_guard(saved, tmp_path / "wide", width * 64))
