"""Adapters from the public audio-visual deepfake datasets' own trees to :class:`Clip` lists.

Importing this package registers every adapter in :data:`mmdeepfake.prepare.clips.FORMATS`
(:func:`~mmdeepfake.prepare.clips.read_dataset` does it on first use). Each module reads one
dataset's metadata and folder names only, never its videos, and says in its docstring which
public loaders and documents its reading was checked against.
"""

from mmdeepfake.prepare.formats import avdeepfake1m, dfdc, fakeavceleb, folders, lavdf

__all__ = ["avdeepfake1m", "dfdc", "fakeavceleb", "folders", "lavdf"]
