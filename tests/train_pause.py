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
import threading

from mmdeepfake.cli.train import cli
from mmdeepfake.train.artifacts import RunArtifacts


def main() -> None:
    name, separator, *args = sys.argv[1:]
    assert separator == "--", "usage: train_pause.py CHECKPOINT -- TRAIN_ARGS"
    save = RunArtifacts.save_checkpoint

    def save_then_pause(self: RunArtifacts, state: dict, checkpoint: str) -> str:
        key = save(self, state, checkpoint)
        if checkpoint == name:
            # Python runs signal handlers in the main thread whichever thread the kernel hands
            # the signal to (boto3 and the memory sampler have threads of their own), so the
            # pause waits for its own handler rather than for the signal itself. The handler is
            # in place before the line is printed, so a SIGTERM cannot slip in unseen; it then
            # goes on to the trainer's handler.
            resumed = threading.Event()
            trainer_handler = signal.getsignal(signal.SIGTERM)

            def on_sigterm(signum: int, frame: object) -> None:
                signal.signal(signal.SIGTERM, trainer_handler)
                resumed.set()

            signal.signal(signal.SIGTERM, on_sigterm)
            print(f"paused after {checkpoint}", file=sys.stderr, flush=True)
            while not resumed.wait(0.05):
                pass
            signal.raise_signal(signal.SIGTERM)
        return key

    RunArtifacts.save_checkpoint = save_then_pause
    sys.argv = ["mmdeepfake-train", *args]
    cli()


if __name__ == "__main__":
    main()
