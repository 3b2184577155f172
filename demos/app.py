"""Start the mmdeepfake demo page.

    python demos/app.py [--model DIR_OR_ID] [--models-dir DIR] [--allow-hub]
                        [--host 127.0.0.1] [--port 7860] [--share]

Without ``--model`` the page runs the starter model bundled with mmdeepfake. Visitors may switch
(in the Model tab, or through the API) only to models the operator offers here: the starter,
folders under ``--models-dir``, and Hugging Face Hub ids with ``--allow-hub``; nothing else on
the server can be named. If that model is
missing from the installation, the page still starts with an untrained detector and says so at
the top, so every view can be tried; a model named with ``--model`` that cannot be loaded is an
error instead (the message says why), because the user asked for that model specifically.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the mmdeepfake_demo package beside us

from mmdeepfake_demo import build_app, launch, load_model, untrained_model
from mmdeepfake_demo.models import LoadedModel, ModelCatalog

from mmdeepfake.errors import MmDeepfakeError


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="mmdeepfake demo page (Gradio)")
    parser.add_argument(
        "--model",
        default=None,
        help="local folder or Hugging Face Hub id (default: the starter model)",
    )
    parser.add_argument(
        "--models-dir",
        type=Path,
        default=None,
        help="folder whose saved detectors visitors may load by name (default: none)",
    )
    parser.add_argument(
        "--allow-hub",
        action="store_true",
        help="let visitors load Hugging Face Hub ids (owner/name) too (default: no)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=7860, help="port to listen on")
    parser.add_argument(
        "--share",
        action="store_true",
        help="also open a temporary public gradio.live link (needs internet)",
    )
    return parser.parse_args(argv)


def initial_model(spec: str | None) -> LoadedModel:
    """The model asked for, or for the default starter an untrained stand-in with a notice."""
    try:
        return load_model(spec)
    except MmDeepfakeError as exc:
        if spec is not None:
            raise
        notice = f"The starter model could not be loaded ({exc}); showing an untrained detector."
        print(f"warning: {notice}", file=sys.stderr)
        return untrained_model(notice)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.models_dir is not None and not args.models_dir.is_dir():
        print(f"error: --models-dir {args.models_dir} is not a folder", file=sys.stderr)
        return 2
    catalog = ModelCatalog(models_dir=args.models_dir, allow_hub=args.allow_hub)
    try:
        model = initial_model(args.model)
    except MmDeepfakeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    print("preparing the example clips...", flush=True)
    app = build_app(model, catalog=catalog)
    launch(app, host=args.host, port=args.port, share=args.share)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
