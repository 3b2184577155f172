"""load_detector: every source a model spec names loads the weights saved there, and a spec that
names no source is refused with the accepted spellings."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import mmdeepfake
from mmdeepfake import Detector, load_detector
from mmdeepfake.errors import CheckpointError, ConfigError, HubUnreachableError
from mmdeepfake.loading import load_run_detector, parse_spec
from mmdeepfake.testing import media as mf
from tiny_models import TINY_ARCH

SPELLED_OUT = (
    "'starter'",
    "hf-hub:ORG/NAME",
    "hf-hub:ORG/NAME@REVISION",
    "ORG/NAME",
    "./my-model",
    "s3://BUCKET/PREFIX",
)


def _saved(folder: Path, seed: int, fusion: str) -> Path:
    torch.manual_seed(seed)
    Detector(fusion=fusion, **TINY_ARCH).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def outputs(tmp_path_factory) -> Path:
    """A training outputs folder with two finished runs whose best models differ."""
    root = tmp_path_factory.mktemp("outputs")
    _saved(root / "run-1" / "models" / "best", seed=1, fusion="mid")
    _saved(root / "run-2" / "models" / "best", seed=2, fusion="late")
    return root


def _weights_of(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


def _assert_holds(detector: Detector, folder: Path) -> None:
    """Every tensor of ``detector`` is the one saved in ``folder``."""
    saved = _weights_of(folder)
    state = detector.state_dict()
    assert set(state) == set(saved)
    for key, tensor in saved.items():
        torch.testing.assert_close(state[key], tensor, rtol=0, atol=0, msg=key)


def test_load_detector_is_exported_from_the_package():
    assert "load_detector" in mmdeepfake.__all__
    assert mmdeepfake.load_detector is load_detector


def test_a_local_folder_loads_its_own_weights(outputs):
    best = outputs / "run-2" / "models" / "best"
    for spec in (best, str(best)):
        detector = load_detector(spec)
        _assert_holds(detector, best)
        assert detector.fusion_name == "late" and detector.name == str(best)
    assert load_detector(best, threshold=0.3).threshold == 0.3  # overrides replace config values


def test_subfolder_picks_the_run_output(outputs):
    first = load_detector(outputs / "run-1", subfolder="models/best")
    second = load_detector(str(outputs), subfolder="run-2/models/best/")
    _assert_holds(first, outputs / "run-1" / "models" / "best")
    _assert_holds(second, outputs / "run-2" / "models" / "best")
    assert (first.fusion_name, second.fusion_name) == ("mid", "late")
    assert second.name == f"{outputs}/run-2/models/best"

    # A run folder is not a model folder: the error names where its model is.
    with pytest.raises(CheckpointError, match="training run's output.*models/best"):
        load_detector(outputs / "run-1")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_detector(outputs, subfolder="run-3/models/best")
    for escape in ("../run-1", "/etc", "run-1/../../x"):
        with pytest.raises(ConfigError, match="relative path inside"):
            load_detector(outputs / "run-1", subfolder=escape)


def test_starter_is_the_bundled_model():
    bundled = Path(mmdeepfake.__file__).parent / "starter"
    detector = load_detector("starter")
    _assert_holds(detector, bundled)
    assert detector.name == "starter"
    _assert_holds(Detector.starter(), bundled)
    with pytest.raises(ConfigError, match="no sub-folders"):
        load_detector("starter", subfolder="models/best")


@pytest.mark.slow
def test_an_s3_folder_loads_through_a_removed_temporary_folder(
    outputs, s3_bucket, tmp_path, monkeypatch
):
    from mmdeepfake.data.storage import open_storage

    bucket = open_storage(s3_bucket.uri(), endpoint_url=s3_bucket.endpoint_url)
    for path in outputs.rglob("*"):
        if path.is_file():
            bucket.write_bytes("outputs/" + path.relative_to(outputs).as_posix(), path.read_bytes())
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))

    uri = s3_bucket.uri("outputs/run-2/models/best")
    detector = load_detector(uri, endpoint_url=s3_bucket.endpoint_url)
    _assert_holds(detector, outputs / "run-2" / "models" / "best")
    assert detector.name == uri
    assert detector.card and "late" in detector.card  # the saved card came along

    by_subfolder = load_detector(
        s3_bucket.uri("outputs"), subfolder="run-1/models/best", endpoint_url=s3_bucket.endpoint_url
    )
    _assert_holds(by_subfolder, outputs / "run-1" / "models" / "best")
    run = load_run_detector(
        open_storage(s3_bucket.uri("outputs"), endpoint_url=s3_bucket.endpoint_url), "run-2"
    )
    _assert_holds(run, outputs / "run-2" / "models" / "best")
    assert list(scratch.iterdir()) == []  # every temporary copy was removed

    with pytest.raises(CheckpointError, match="training run's output.*run-1/models/best"):
        load_detector(s3_bucket.uri("outputs/run-1"), endpoint_url=s3_bucket.endpoint_url)
    with pytest.raises(CheckpointError, match="no config.json or model.safetensors"):
        load_detector(s3_bucket.uri("elsewhere"), endpoint_url=s3_bucket.endpoint_url)


def _hub_cache(cache: Path, repo_id: str, revisions: dict[str, tuple[str, Path]]) -> None:
    """Lay out ``cache`` as huggingface_hub leaves it after downloading ``repo_id``: one
    snapshot folder per commit, and refs naming the commit of each branch or tag."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    for ref, (commit, folder) in revisions.items():
        (repo / "refs").mkdir(parents=True, exist_ok=True)
        (repo / "refs" / ref).write_text(commit)
        snapshot = repo / "snapshots" / commit
        shutil.copytree(
            folder, snapshot / "sub" if ref == "nested" else snapshot, dirs_exist_ok=True
        )


def test_hub_repos_load_the_revision_and_subfolder_asked_for(outputs, tmp_path):
    # The Hugging Face Hub cannot be reached from the tests (HF_HUB_OFFLINE=1), so the hub is
    # mocked by its local cache, laid out as a download leaves it; huggingface_hub itself
    # resolves the revision and reads the files from there.
    run1, run2 = (outputs / name / "models" / "best" for name in ("run-1", "run-2"))
    cache = tmp_path / "hub"
    _hub_cache(
        cache,
        "org/detector",
        {"main": ("a" * 40, run1), "v2": ("b" * 40, run2), "nested": ("c" * 40, run2)},
    )

    _assert_holds(load_detector("hf-hub:org/detector", cache_dir=cache), run1)
    _assert_holds(load_detector("org/detector", cache_dir=cache), run1)  # bare ORG/NAME
    _assert_holds(load_detector("hf-hub:org/detector@v2", cache_dir=cache), run2)
    _assert_holds(load_detector("hf-hub:org/detector", revision="v2", cache_dir=cache), run2)
    _assert_holds(Detector.from_pretrained("org/detector", revision="v2", cache_dir=cache), run2)
    nested = load_detector(
        "hf-hub:org/detector", revision="nested", subfolder="sub", cache_dir=cache
    )
    _assert_holds(nested, run2)
    assert load_detector("hf-hub:org/detector@v2", cache_dir=cache).name == "hf-hub:org/detector@v2"

    with pytest.raises(ConfigError, match="give one"):
        load_detector("hf-hub:org/detector@v2", revision="main", cache_dir=cache)
    with pytest.raises(HubUnreachableError, match="not in the local cache"):
        load_detector("hf-hub:org/other", cache_dir=cache)


def test_a_local_folder_named_like_a_hub_id_is_the_folder(outputs, monkeypatch):
    monkeypatch.chdir(outputs)
    assert parse_spec("run-1/models").kind == "local folder"
    assert parse_spec("hf-hub:run-1/models").kind == "hub repo"  # the prefix decides


@pytest.mark.parametrize(
    "spec",
    [
        "hf-hub:",
        "hf-hub:org/name@",
        "hf-hub:a/b/c",
        "local-dir",
        "./missing/model",
        "gs://bucket/model",
        "s3:///prefix",
        "",
        "hf_hub:org/name",
    ],
)
def test_unknown_spellings_are_refused_with_the_accepted_ones(spec):
    with pytest.raises((ConfigError, CheckpointError)) as raised:
        load_detector(spec)
    message = str(raised.value)
    for spelling in SPELLED_OUT:
        assert spelling in message, (spec, message)


def test_a_revision_is_for_hub_repos_only(outputs):
    with pytest.raises(ConfigError, match="hub repos only"):
        load_detector(outputs / "run-1" / "models" / "best", revision="main")
    with pytest.raises(ConfigError, match="hub repos only"):
        load_detector("starter", revision="main")


def _predict_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mmdeepfake.cli.predict", *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.mark.slow
def test_the_predict_command_loads_an_s3_model_with_its_endpoint(outputs, s3_bucket, tmp_path):
    from PIL import Image

    best = outputs / "run-2" / "models" / "best"
    client = s3_bucket.server.client()
    for path in best.iterdir():
        client.put_object(
            Bucket=s3_bucket.name, Key=f"models/best/{path.name}", Body=path.read_bytes()
        )
    Image.fromarray(mf.face_photo()).save(tmp_path / "face.jpg")
    mf.write_audio(tmp_path / "voice.flac", mf.voice_like(seconds=2.0))
    pair = (str(tmp_path / "face.jpg"), str(tmp_path / "voice.flac"))

    uri = s3_bucket.uri("models/best")
    result = _predict_cli(
        "--pair",
        *pair,
        "--model",
        uri,
        "--endpoint-url",
        s3_bucket.endpoint_url,
        "--format",
        "json",
    )
    assert result.returncode == 0, result.stderr
    (record,) = json.loads(result.stdout)
    expected = load_detector(best).predict(image=pair[0], audio=pair[1])
    assert record["model"]["name"] == uri
    assert record["fake_probability"] == pytest.approx(expected.fake_probability, abs=1e-6)

    refused = _predict_cli("--pair", *pair, "--model", "hf-hub:")
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    assert "hf-hub:ORG/NAME" in refused.stderr and "s3://BUCKET/PREFIX" in refused.stderr


def test_a_run_push_uploads_the_best_model_it_downloaded(outputs, monkeypatch):
    # The Hugging Face Hub cannot be reached from here, so HfApi's two calls are replaced by a
    # recorder; the copy out of the run's storage and the card run for real.
    from huggingface_hub import HfApi

    from mmdeepfake.data.storage import open_storage
    from mmdeepfake.train.hub import push_run_model

    uploaded: dict = {}

    def record_upload(self, *, repo_id, folder_path, **kwargs):
        folder = Path(folder_path)
        uploaded.update(
            repo=repo_id,
            files=sorted(p.name for p in folder.iterdir()),
            weights=load_file(str(folder / "model.safetensors")),
            card=(folder / "README.md").read_text(),
        )

    monkeypatch.setattr(HfApi, "create_repo", lambda self, repo_id, **kwargs: None)
    monkeypatch.setattr(HfApi, "upload_folder", record_upload)
    push_run_model(open_storage(outputs), "run-2", "me/detector")
    assert uploaded["repo"] == "me/detector"
    assert uploaded["files"] == ["README.md", "config.json", "model.safetensors"]
    saved = _weights_of(outputs / "run-2" / "models" / "best")
    assert all(torch.equal(uploaded["weights"][k], v) for k, v in saved.items())
    assert "# me/detector" in uploaded["card"]
