"""Rebuild ``voice_en.flac``, the voice that goes with the photograph example of the demo.

No speech corpus can be downloaded where mmdeepfake is built, so the voice is synthesised with
the eSpeak NG formant synthesiser (Debian package ``espeak-ng``): it is speech, but not a human
recording, and the demo says so next to the example. The file is 16 kHz mono FLAC, the rate the
detector works at, and small enough to ship in the repository.

    python demos/assets/make_voice.py            # needs `apt-get install espeak-ng`
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

SENTENCE = (
    "Hello there! It is lovely to see you again. "
    "Let me tell you the story of the very first computer bug."
)
VOICE = "en-us+f3"  # an American English voice with a higher, female-like pitch variant
SPEED_WPM = 150
TARGET_RATE = 16000
OUTPUT = Path(__file__).with_name("voice_en.flac")


def _resample(wave: np.ndarray, source_rate: int, target_rate: int) -> np.ndarray:
    """Linear-interpolation resampling; espeak-ng's 22.05 kHz output is band-limited to speech."""
    if source_rate == target_rate:
        return wave
    duration = len(wave) / source_rate
    target_times = np.arange(int(duration * target_rate)) / target_rate
    source_times = np.arange(len(wave)) / source_rate
    return np.interp(target_times, source_times, wave).astype(np.float32)


def main() -> int:
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        print("error: espeak-ng is not installed (apt-get install espeak-ng)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "voice.wav"
        subprocess.run(
            [espeak, "-v", VOICE, "-s", str(SPEED_WPM), "-w", str(wav), SENTENCE], check=True
        )
        wave, rate = sf.read(wav, dtype="float32", always_2d=True)
    wave = _resample(wave.mean(axis=1), rate, TARGET_RATE)
    wave = 0.9 * wave / max(float(np.abs(wave).max()), 1e-6)
    sf.write(OUTPUT, wave, TARGET_RATE, format="FLAC", subtype="PCM_16")
    print(
        f"wrote {OUTPUT} ({OUTPUT.stat().st_size / 1024:.0f} KiB, {len(wave) / TARGET_RATE:.1f} s)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
