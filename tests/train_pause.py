"""Run mmdeepfake-train and hold it still right after it writes a chosen checkpoint.

    python tests/train_pause.py epoch_0001.pt -- --bucket ... (mmdeepfake-train's arguments)

Once the checkpoint is saved, the process prints ``paused after epoch_0001.pt`` on stderr and
waits: the kill and stop tests then signal it at a known point of the run, instead of after a
delay that may land anywhere. SIGKILL ends it there; SIGTERM is handed to the trainer's own
handler, and the run goes on to its clean stop.
"""

from __future__ import annotations

import signal
import sys

from mmdeepfake.cli.train import cli
from mmdeepfake.train.artifacts import RunArtifacts


def main() -> None:
    name, separator, *args = sys.argv[1:]
    assert separator == "--", "usage: train_pause.py CHECKPOINT -- TRAIN_ARGS"
    save = RunArtifacts.save_checkpoint

    def save_then_pause(self: RunArtifacts, state: dict, checkpoint: str) -> str:
        key = save(self, state, checkpoint)
        if checkpoint == name:
            # SIGTERM is held back from before the line is printed until it is waited for, so
            # it cannot slip in between and be missed; then it goes to the trainer's handler.
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
            print(f"paused after {checkpoint}", file=sys.stderr, flush=True)
            signal.sigwait({signal.SIGTERM})
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
            signal.raise_signal(signal.SIGTERM)
        return key

    RunArtifacts.save_checkpoint = save_then_pause
    sys.argv = ["mmdeepfake-train", *args]
    cli()


if __name__ == "__main__":
    main()
