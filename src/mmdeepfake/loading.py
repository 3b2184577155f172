"""One way to name a saved detector, and one loader for every place it can live.

A *model spec* says where a detector's two files (``config.json`` and ``model.safetensors``)
are. As timm's ``parse_model_name`` does, the source is spelled out rather than guessed:

==============================  ==============================================================
``starter``                     the small model bundled with the package
``hf-hub:ORG/NAME[@REVISION]``  a Hugging Face Hub repo, at a branch, tag or commit
``ORG/NAME``                    the same, when no local folder has that name
``./my-model``, ``/abs/path``   a folder written by ``Detector.save_pretrained``
``s3://BUCKET/PREFIX``          such a folder in S3 or an S3-compatible server (``endpoint_url``)
==============================  ==============================================================

``subfolder=`` names a folder inside any of them but the starter, as pyannote's
``Pipeline.from_pretrained`` does; a training run keeps its best model in ``models/best``, so
``load_detector("outputs/RUN", subfolder="models/best")`` loads it. A string that fits none of
the spellings, or a folder that does not exist, is refused with a message listing them:
nothing is downloaded on a guess. Weights are read from safetensors only, never unpickled; an
S3 folder is copied into a temporary folder that is removed once the model is built.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from mmdeepfake import model_files
from mmdeepfake.errors import CheckpointError, ConfigError
from mmdeepfake.model_files import CONFIG_NAME, WEIGHTS_NAME

if TYPE_CHECKING:
    from mmdeepfake.data.storage import Storage
    from mmdeepfake.detector import Detector

STARTER = "starter"
HUB_PREFIX = "hf-hub:"
S3_PREFIX = "s3://"
LOCAL = "local folder"
HUB = "hub repo"
S3 = "S3 folder"

# Where a training run keeps its models: <outputs>/<run_id>/models/<folder>/.
RUN_MODELS = "models"
BEST_FOLDER = "best"

SPELLINGS = (
    "'starter' (the bundled model), 'hf-hub:ORG/NAME' or 'hf-hub:ORG/NAME@REVISION' (a "
    "Hugging Face Hub repo; a bare 'ORG/NAME' works too when no such local folder exists), a "
    "folder written by Detector.save_pretrained ('./my-model'), or 's3://BUCKET/PREFIX'"
)

# The files of a saved detector that a copy from storage brings along (the card is optional).
_MODEL_FILES = (CONFIG_NAME, WEIGHTS_NAME, "README.md")
# A Hugging Face repo id: "name" or "owner/name" (the hub's own rule for the characters).
_REPO_ID = re.compile(r"^(?:[A-Za-z0-9][\w.-]{0,95}/)?[A-Za-z0-9][\w.-]{0,95}$")
# "gs://...", "http://...", "hf_hub:...": a source this loader does not know (two letters at
# least, so a Windows drive "C:" is left to the folder check).
_OTHER_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+._-]+):")
_PATH_STARTS = ("./", "../", "/", "~", ".\\", "..\\")


@dataclass(frozen=True)
class ModelSource:
    """Where a model spec points: its kind (``STARTER``, ``LOCAL``, ``HUB`` or ``S3``), the
    folder, repo id or URI, and for a hub repo the revision the spec names."""

    kind: str
    location: str
    revision: str | None = None


def parse_spec(spec: str | os.PathLike[str]) -> ModelSource:
    """Which source a model spec names, from its spelling alone (plus, for an unprefixed
    string, whether such a local folder exists).

    Raises:
        ConfigError: a malformed spec (empty, ``hf-hub:`` with no repo id, an unknown scheme).
        CheckpointError: a path-like spec that names no existing file or folder.
    """
    if not isinstance(spec, str):  # a Path is a folder, whatever its name
        return ModelSource(LOCAL, os.fspath(spec))
    if not spec.strip():
        raise ConfigError(f"no model given; give {SPELLINGS}")
    if spec == STARTER:
        return ModelSource(STARTER, STARTER)
    if spec.startswith(HUB_PREFIX):
        return _hub_source(spec)
    if spec.startswith(S3_PREFIX):
        if not spec[len(S3_PREFIX) :].partition("/")[0]:
            raise ConfigError(f"{spec!r} has no bucket name; give {SPELLINGS}")
        return ModelSource(S3, spec)
    if Path(os.path.expanduser(spec)).exists():
        return ModelSource(LOCAL, spec)
    other = _OTHER_SCHEME.match(spec)
    if other:
        raise ConfigError(f"{spec!r}: unknown model source {other.group(1)!r}; give {SPELLINGS}")
    if "/" in spec and not spec.startswith(_PATH_STARTS) and _is_repo_id(spec):
        return ModelSource(HUB, spec)
    raise CheckpointError(f"model folder {spec!r} does not exist; give {SPELLINGS}")


def load_detector(
    spec: str | os.PathLike[str],
    *,
    subfolder: str | None = None,
    revision: str | None = None,
    endpoint_url: str | None = None,
    token: str | bool | None = None,
    cache_dir: str | Path | None = None,
    local_files_only: bool = False,
    force_download: bool = False,
    map_location: str = "cpu",
    **overrides: Any,
) -> Detector:
    """Load a saved detector from any source a model spec names (see the module docstring).

    Args:
        spec: ``starter``, ``hf-hub:ORG/NAME[@REVISION]``, ``ORG/NAME``, a local folder (a
            ``Path`` is always one) or ``s3://BUCKET/PREFIX``.
        subfolder: a folder inside the source holding the model (``models/best`` of a run).
        revision: hub repos only: a branch, tag or commit (or write ``@REVISION``).
        endpoint_url: S3 only: the endpoint of an S3-compatible server.
        token, cache_dir, local_files_only, force_download: hub repos only, as in
            ``huggingface_hub.hf_hub_download``.
        map_location: the device the weights are read onto.
        overrides: config values to replace (``threshold=0.4``, ``image_encoder_kwargs=...``).

    Raises:
        ConfigError: a malformed spec or subfolder, or an option the source does not take.
        CheckpointError: nothing loadable there; the message says what was looked for.
        HubUnreachableError: a hub repo while the hub does not answer and the cache is empty.
    """
    from mmdeepfake.detector import Detector

    return load_as(
        Detector,
        spec,
        subfolder=subfolder,
        revision=revision,
        endpoint_url=endpoint_url,
        token=token,
        cache_dir=cache_dir,
        local_files_only=local_files_only,
        force_download=force_download,
        map_location=map_location,
        **overrides,
    )


def load_as(
    cls: type[Detector],
    spec: str | os.PathLike[str],
    *,
    subfolder: str | None = None,
    revision: str | None = None,
    endpoint_url: str | None = None,
    token: str | bool | None = None,
    cache_dir: str | Path | None = None,
    local_files_only: bool = False,
    force_download: bool = False,
    map_location: str = "cpu",
    **overrides: Any,
) -> Detector:
    """:func:`load_detector` building ``cls`` (a Detector subclass's ``from_pretrained``)."""
    source = parse_spec(spec)
    inner = _check_subfolder(subfolder)
    if source.revision and revision and source.revision != revision:
        raise ConfigError(
            f"{spec!r} names revision {source.revision!r} but revision="
            f"{revision!r} was passed too; give one"
        )
    revision = revision or source.revision
    if revision is not None and source.kind != HUB:
        raise ConfigError(
            f"a revision applies to hub repos only, and {spec!r} is a "
            f"{'bundled model' if source.kind == STARTER else source.kind}"
        )
    text = os.fspath(spec)
    name = f"{text.rstrip('/')}/{inner}" if inner else text
    if source.kind == STARTER:
        if inner:
            raise ConfigError("the starter model has no sub-folders; drop subfolder=")
        return _load_starter(cls, map_location=map_location, overrides=overrides)
    if source.kind == S3:
        from mmdeepfake.data.storage import open_storage

        storage = open_storage(name if inner else source.location, endpoint_url=endpoint_url)
        return load_from_storage(
            cls, storage, "", name, map_location=map_location, overrides=overrides
        )
    if source.kind == HUB:
        repo_id = source.location.removeprefix(HUB_PREFIX).partition("@")[0]
        files = model_files.hub_files(
            repo_id,
            subfolder=inner,
            revision=revision,
            cache_dir=cache_dir,
            force_download=force_download,
            token=token,
            local_files_only=local_files_only,
        )
        return cls._from_files(*files, name, map_location=map_location, overrides=overrides)
    folder = Path(os.path.expanduser(source.location))
    if not folder.exists():  # a Path that names nothing
        raise CheckpointError(f"model folder {text!r} does not exist; give {SPELLINGS}")
    if not folder.is_dir():
        raise CheckpointError(
            f"{text!r} is a file; give the folder holding config.json and model.safetensors"
        )
    folder = folder / inner if inner else folder
    if not folder.is_dir():
        raise CheckpointError(f"model folder {name!r} does not exist")
    if not (folder / CONFIG_NAME).is_file() and (folder / RUN_MODELS / BEST_FOLDER).is_dir():
        raise CheckpointError(_run_advice(name, str(folder / RUN_MODELS / BEST_FOLDER)))
    config_path, weights_path = model_files.folder_files(folder, name)
    return cls._from_files(
        config_path, weights_path, name, map_location=map_location, overrides=overrides
    )


def load_from_storage(
    cls: type[Detector],
    storage: Storage,
    prefix: str,
    name: str,
    *,
    map_location: str = "cpu",
    overrides: dict[str, Any] | None = None,
) -> Detector:
    """The detector saved under ``prefix`` of a storage, copied through a temporary folder."""
    with tempfile.TemporaryDirectory(prefix="mmdeepfake-model-") as tmp:
        download_folder(storage, prefix, Path(tmp))
        return cls._from_files(
            Path(tmp, CONFIG_NAME),
            Path(tmp, WEIGHTS_NAME),
            name,
            map_location=map_location,
            overrides=overrides,
        )


def download_folder(storage: Storage, prefix: str, dest: Path) -> None:
    """Copy the saved detector directly under ``prefix`` (config, weights, card) into ``dest``.

    Raises:
        CheckpointError: ``prefix`` holds no config.json or no model.safetensors.
    """
    base = prefix.strip("/") + "/" if prefix.strip("/") else ""
    keys = set(storage.list(base))
    found = [name for name in _MODEL_FILES if base + name in keys]
    missing = [name for name in (CONFIG_NAME, WEIGHTS_NAME) if name not in found]
    if missing:
        where = storage.uri(base)
        run_model = f"{base}{RUN_MODELS}/{BEST_FOLDER}/{CONFIG_NAME}"
        if run_model in keys:
            raise CheckpointError(_run_advice(where, storage.uri(run_model.rsplit("/", 1)[0])))
        raise CheckpointError(
            f"no {' or '.join(missing)} under {where}; give the folder a "
            "detector was saved to (a run's models/best); was the run finished?"
        )
    for name in found:
        (dest / name).write_bytes(storage.read_bytes(base + name))


def run_model_prefix(run_id: str, folder: str = BEST_FOLDER) -> str:
    """The key prefix of a training run's saved model inside its outputs storage."""
    return f"{run_id}/{RUN_MODELS}/{folder}"


def load_run_detector(storage: Storage, run_id: str, folder: str = BEST_FOLDER) -> Detector:
    """The Detector saved under ``<run_id>/models/<folder>/`` of a run's outputs storage."""
    from mmdeepfake.detector import Detector

    prefix = run_model_prefix(run_id, folder)
    return load_from_storage(Detector, storage, prefix, storage.uri(prefix))


def _load_starter(cls: type[Detector], *, map_location: str, overrides: dict[str, Any]) -> Detector:
    folder = resources.files("mmdeepfake") / "starter"
    if not folder.joinpath(WEIGHTS_NAME).is_file():
        raise CheckpointError(
            "the bundled starter model is missing from this installation; reinstall "
            "mmdeepfake or load a saved model with load_detector(...)"
        )
    with resources.as_file(folder) as path:
        return cls._from_files(
            path / CONFIG_NAME,
            path / WEIGHTS_NAME,
            STARTER,
            map_location=map_location,
            overrides=overrides,
        )


def _hub_source(spec: str) -> ModelSource:
    repo_id, at, revision = spec[len(HUB_PREFIX) :].partition("@")
    if not _is_repo_id(repo_id) or (at and not revision):
        raise ConfigError(
            f"{spec!r} is not a hub repo: write hf-hub:ORG/NAME or "
            f"hf-hub:ORG/NAME@REVISION. Accepted models: {SPELLINGS}"
        )
    return ModelSource(HUB, spec, revision or None)


def _is_repo_id(text: str) -> bool:
    return bool(_REPO_ID.match(text)) and ".." not in text


def _check_subfolder(subfolder: str | None) -> str | None:
    """``subfolder`` as a clean relative path (``None`` when empty); never out of its source."""
    if subfolder is None or not subfolder.strip("/"):
        return None
    path = PurePosixPath(subfolder.strip("/"))
    if "\\" in subfolder or subfolder.startswith(("/", "~")) or ".." in path.parts:
        raise ConfigError(
            f"subfolder {subfolder!r} must be a relative path inside the model's "
            "source, such as 'models/best'"
        )
    return path.as_posix()


def _run_advice(where: str, best: str) -> str:
    return (
        f"{where!r} holds no config.json: it looks like a training run's output folder. Its "
        f"best model is in {best!r} (or pass subfolder='{RUN_MODELS}/{BEST_FOLDER}')"
    )
