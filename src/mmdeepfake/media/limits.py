"""The limits every piece of media is held to, in one place.

A small file can expand into far more data than its size suggests: a FLAC of silence holds
hours in a few megabytes, an H.264 stream of flat 8000 x 8000 frames needs 192 MB per decoded
frame, a WAV header can claim any sample rate. mmdeepfake checks these limits from the header
(or while streaming) before it decodes the whole input, so that memory stays bounded whatever
arrives. Each limit is a module constant that the decoding functions take as their default;
raise one by passing the matching keyword argument (``max_seconds=``, ``max_frame_pixels=``...)
or by changing the constant before the first call.
"""

from __future__ import annotations

#: Largest file, byte string or S3 object accepted, in bytes.
MAX_FILE_BYTES = 2 * 1024**3
#: Largest image accepted, in pixels (width x height): about a 9000 x 9000 photograph.
MAX_IMAGE_PIXELS = 80_000_000
#: Longest audio decoded, in seconds (an hour of 16 kHz float32 is 230 MB).
MAX_AUDIO_SECONDS = 3600.0
#: Sample rates accepted: below 4 kHz there is no voice band left; above 384 kHz (the highest
#: rate of studio converters) a header is lying or the file is not audio.
MIN_SAMPLE_RATE = 4_000
MAX_SAMPLE_RATE = 384_000
#: Largest amplitude accepted in float audio (full scale is 1.0): 60 dB above full scale.
MAX_AMPLITUDE = 1_000.0
#: Largest stored video frame accepted, in pixels: 8K UHD (7680 x 4320).
MAX_FRAME_PIXELS = 7680 * 4320
#: Frames are scaled down while decoding to at most this many pixels (1920 x 1080) ...
MAX_DECODED_FRAME_PIXELS = 1920 * 1080
#: ... and further when needed so that all sampled frames together stay under this many
#: pixels (RGB, 384 MB at most; 256 frames of about 960 x 540 each).
MAX_VIDEO_PIXELS = 128 * 1024**2
