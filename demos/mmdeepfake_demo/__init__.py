"""The mmdeepfake demo page: a Gradio app that only imports the library.

``build_app(detector)`` returns the page (so tests can serve it on a free port) and ``launch``
serves it with the upload limit, queue and file-access rules of the demo.
"""

from mmdeepfake_demo.models import LoadedModel, ModelStore, load_model, untrained_model
from mmdeepfake_demo.ui import build_app, launch

__all__ = ["LoadedModel", "ModelStore", "build_app", "launch", "load_model", "untrained_model"]
