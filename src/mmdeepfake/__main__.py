"""``python -m mmdeepfake``: the ``mmdeepfake`` command (see :mod:`mmdeepfake.cli.main`)."""

from mmdeepfake.cli.main import cli

if __name__ == "__main__":
    cli()
