"""Sharing a trained detector: a run's best model folder pushed to the Hugging Face Hub.

The pushed folder carries the model card of :mod:`mmdeepfake.model_card`, generated from the
saved ``config.json``. The token comes from ``HF_TOKEN``.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from mmdeepfake.data.storage import Storage
from mmdeepfake.errors import ConfigError, MmDeepfakeError
from mmdeepfake.loading import download_folder, run_model_prefix
from mmdeepfake.model_card import build_model_card


def push_run_model(storage: Storage, run_id: str, repo_id: str) -> str:
    """Upload a run's best model folder, with its model card, to the Hub; returns the URL."""
    if "/" not in repo_id:
        raise ConfigError(f"--push-to-hub {repo_id!r}: give a repo id as USER_OR_ORG/NAME")
    from huggingface_hub import HfApi

    with tempfile.TemporaryDirectory(prefix="mmdeepfake-push-") as tmp:
        folder = Path(tmp)
        download_folder(storage, run_model_prefix(run_id), folder)
        config = json.loads((folder / "config.json").read_text())
        (folder / "README.md").write_text(build_model_card(config, repo_id=repo_id))
        api = HfApi(token=os.environ.get("HF_TOKEN"))
        try:
            api.create_repo(repo_id, exist_ok=True, repo_type="model")
            api.upload_folder(
                folder_path=str(folder),
                repo_id=repo_id,
                repo_type="model",
                commit_message=f"mmdeepfake run {run_id}",
            )
        except Exception as exc:  # noqa: BLE001 - network, auth and hub errors alike
            raise MmDeepfakeError(
                f"pushing run {run_id} to the Hub repo {repo_id} failed ({type(exc).__name__}: "
                f"{exc}); set HF_TOKEN to a token with write access and check the network. "
                f"The model is still in {storage.uri(run_model_prefix(run_id))}"
            ) from None
    import logging

    logging.getLogger("mmdeepfake.train").info(
        "pushed the best model of run %s to %s", run_id, repo_id
    )
    return f"https://huggingface.co/{repo_id}"
