"""Find a saved detector's two files, in a local folder or a Hugging Face Hub repo.

Which of the two a model spec names is decided by :mod:`mmdeepfake.loading`; this module
only finds the files once that is known.

``huggingface_hub`` retries a refused connection five times with growing waits (about 23 s
in all) before it gives up. A person who typed a model name without network should learn in
a moment that the hub is out of reach and that a local folder works, so the hub is first asked
once, with :data:`HUB_TIMEOUT_S` per attempt and :data:`HUB_RETRIES` retries; when it does not
answer, the local cache is tried and otherwise :class:`HubUnreachableError` is raised.
"""

from __future__ import annotations

import logging
from pathlib import Path

from mmdeepfake.errors import CheckpointError, HubUnreachableError

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
HUB_TIMEOUT_S = 3.0
HUB_RETRIES = 1
HUB_RETRY_WAIT_S = 0.5


def folder_files(folder: Path, shown: str) -> tuple[Path, Path]:
    """(config.json, model.safetensors) of a folder written by ``Detector.save_pretrained``.

    Raises:
        CheckpointError: the folder lacks one of the two files.
    """
    files = folder / CONFIG_NAME, folder / WEIGHTS_NAME
    for path in files:
        if not path.is_file():
            raise CheckpointError(
                f"{shown!r} has no {path.name}; give a folder written by "
                "Detector.save_pretrained (config.json + model.safetensors)"
            )
    return files


def hub_files(
    repo_id: str,
    *,
    subfolder: str | None = None,
    revision: str | None = None,
    cache_dir: str | Path | None = None,
    force_download: bool = False,
    token: str | bool | None = None,
    local_files_only: bool = False,
) -> tuple[Path, Path]:
    """(config.json, model.safetensors) of a hub repo (or a folder inside it), downloaded
    into the hub cache, or found there when the hub does not answer.

    Raises:
        CheckpointError: the repo, revision or files do not exist (or are not readable).
        HubUnreachableError: no answer from the hub, and nothing in the cache.
    """
    options = {"revision": revision, "cache_dir": cache_dir, "token": token, "subfolder": subfolder}
    from huggingface_hub import constants

    offline = local_files_only or constants.HF_HUB_OFFLINE
    if not offline and not _hub_answers(repo_id, subfolder, revision, token):
        offline = True
    try:
        return tuple(  # type: ignore[return-value]
            _download(repo_id, name, offline, force_download, options)
            for name in (CONFIG_NAME, WEIGHTS_NAME)
        )
    except HubUnreachableError:
        raise
    except Exception as exc:  # the hub client raises many types (not found, gated, HTTP)
        raise CheckpointError(
            f"could not load a detector from the hub repo {repo_id!r}: {exc}. Check the id and, "
            "for a private repo, HF_TOKEN."
        ) from exc


def _hub_answers(
    repo_id: str, subfolder: str | None, revision: str | None, token: str | bool | None
) -> bool:
    """Whether the hub answers at all (any HTTP status), within this module's retry bounds."""
    import httpx2  # the HTTP client of huggingface_hub
    from huggingface_hub import hf_hub_url
    from huggingface_hub.utils import build_hf_headers, http_backoff

    quiet = logging.getLogger("huggingface_hub.utils._http")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # its "Retrying in ..." lines: the error below says it all
    try:
        http_backoff(
            "HEAD",
            hf_hub_url(repo_id, CONFIG_NAME, subfolder=subfolder, revision=revision),
            max_retries=HUB_RETRIES,
            base_wait_time=HUB_RETRY_WAIT_S,
            max_wait_time=HUB_RETRY_WAIT_S,
            retry_on_status_codes=(),
            headers=build_hf_headers(token=token),
            timeout=HUB_TIMEOUT_S,
        )
    except (httpx2.TransportError, OSError):  # refused, DNS failure, timeout: out of reach
        return False
    finally:
        quiet.setLevel(level)
    return True


def _download(repo_id: str, name: str, offline: bool, force: bool, options: dict) -> Path:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(
            hf_hub_download(
                repo_id=repo_id,
                filename=name,
                local_files_only=offline,
                force_download=force and not offline,
                **options,
            )
        )
    except LocalEntryNotFoundError as exc:
        if not offline:
            raise
        raise HubUnreachableError(
            f"could not load the hub repo id {repo_id!r}: the Hugging Face Hub is not reachable "
            "(or HF_HUB_OFFLINE is set) and the repo is not in the local cache."
        ) from exc
