"""Start the mmdeepfake demo page.

    python demos/app.py [--model DIR_OR_ID] [--models-dir DIR] [--allow-hub]
                        [--host 127.0.0.1] [--port 7860] [--share]

The port is ``--port``, else the ``GRADIO_SERVER_PORT`` environment variable, else 7860
(``make demo PORT=8080`` passes ``--port``). A port already in use is reported in one line
before anything is loaded.

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
import os
import socket
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the mmdeepfake_demo package beside us

from mmdeepfake_demo import build_app, launch, load_model, untrained_model
from mmdeepfake_demo.models import LoadedModel, ModelCatalog

from mmdeepfake.errors import ConfigError, MmDeepfakeError

DEFAULT_PORT = 7860


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="mmdeepfake demo page (Gradio)")
    parser.add_argument(
        "--model",
        default=None,
        help="any mmdeepfake.load_detector spec: a folder, hf-hub:ORG/NAME (or ORG/NAME), "
        "s3://BUCKET/PREFIX, or a folder of saved detectors (default: the starter model)",
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
    parser.add_argument(
        "--port",
        type=int,
        default=None,
        help=f"port to listen on (default: $GRADIO_SERVER_PORT, else {DEFAULT_PORT})",
    )
    parser.add_argument(
        "--share",
        action="store_true",
        help="also open a temporary public gradio.live link (needs internet)",
    )
    return parser.parse_args(argv)


def chosen_port(flag: int | None) -> int:
    """``--port`` when given, else ``GRADIO_SERVER_PORT``, else the default port."""
    if flag is not None:
        return flag
    env = os.environ.get("GRADIO_SERVER_PORT", "").strip()
    if not env:
        return DEFAULT_PORT
    try:
        return int(env)
    except ValueError:
        raise ConfigError(
            f"GRADIO_SERVER_PORT={env!r} is not a port number; set it to one, e.g. 8080"
        ) from None


def check_port_free(host: str, port: int) -> None:
    """Refuse a port another program listens on, with a message saying how to pick another.

    Checked before the model loads, so the user hears at once; the socket takes the same
    SO_REUSEADDR option as the web server, so a port left in TIME_WAIT by a demo that just
    stopped does not count as busy.
    """
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise ConfigError(
                f"port {port} is in use ({exc.strerror}); choose another with PORT=... "
                f"(make demo PORT=8080) or --port 8080"
            ) from None


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
        port = chosen_port(args.port)
        check_port_free(args.host, port)
        model = initial_model(args.model)
    except MmDeepfakeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    print("preparing the example clips...", flush=True)
    app = build_app(model, catalog=catalog)
    launch(app, host=args.host, port=port, share=args.share)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
