"""The new-alarm sound: a short two-tone WAV generated here, served from the console itself."""

from __future__ import annotations

import functools
import io
import math
import struct
import wave

SAMPLE_RATE = 16_000


def _tone(freq_hz: float, duration_s: float, volume: float = 0.6) -> bytes:
    frames = int(SAMPLE_RATE * duration_s)
    fade = int(SAMPLE_RATE * 0.01)  # 10 ms ramps: no clicks
    out = bytearray()
    for i in range(frames):
        envelope = min(1.0, i / fade, (frames - i) / fade)
        sample = volume * envelope * math.sin(2 * math.pi * freq_hz * i / SAMPLE_RATE)
        out += struct.pack("<h", int(sample * 32767))
    return bytes(out)


@functools.cache
def alert_wav() -> bytes:
    """Three high-low pairs, about 1.2 s, 16-bit mono PCM."""
    silence = b"\x00\x00" * int(SAMPLE_RATE * 0.05)
    pcm = b"".join(_tone(1320, 0.15) + _tone(880, 0.15) + silence for _ in range(3))
    buf = io.BytesIO()
    with wave.open(buf, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(SAMPLE_RATE)
        wav.writeframes(pcm)
    return buf.getvalue()
