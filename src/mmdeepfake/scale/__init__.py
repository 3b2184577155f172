"""Scale-out engines on Ray (``pip install "mmdeepfake[scale]"``).

Nothing here is imported by ``import mmdeepfake`` or by the local engines: Ray is an optional
extra, loaded only when a caller asks for ``--engine ray`` or calls into this package.
"""
