"""Audio helpers: decode any upload to 16 kHz mono int16, WAV headers, encoding with PyAV.

All functions here are blocking; call them through `asyncio.to_thread`.
"""

from __future__ import annotations

import io
import struct

import av
import av.error
import numpy as np

__all__ = [
    "ENCODED_FORMATS",
    "AudioDecodeError",
    "decode_to_pcm16",
    "encode_pcm",
    "streaming_wav_header",
]

# response_format -> (PyAV container format, codec, output sample rate)
ENCODED_FORMATS: dict[str, tuple[str, str, int]] = {
    "mp3": ("mp3", "libmp3lame", 24000),
    "opus": ("ogg", "libopus", 24000),
    "aac": ("adts", "aac", 24000),
    "flac": ("flac", "flac", 24000),
}


class AudioDecodeError(ValueError):
    """The upload is not audio that PyAV (FFmpeg) can decode."""


def decode_to_pcm16(data: bytes, rate: int = 16000) -> bytes:
    """Decode any container/codec PyAV knows (WAV at any rate and channel count, MP3, ...)."""
    out: list[np.ndarray] = []
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            if not container.streams.audio:
                raise AudioDecodeError("the file has no audio stream")
            resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)
            for frame in container.decode(audio=0):
                for resampled in resampler.resample(frame):
                    out.append(resampled.to_ndarray().reshape(-1))
            for resampled in resampler.resample(None):
                out.append(resampled.to_ndarray().reshape(-1))
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        if isinstance(exc, AudioDecodeError):
            raise
        raise AudioDecodeError(f"could not decode the audio file: {exc}") from exc
    if not out:
        return b""
    return np.concatenate(out).astype("<i2").tobytes()


def streaming_wav_header(rate: int, channels: int = 1, bits: int = 16) -> bytes:
    """A WAV header for a body of unknown length (sizes 0xFFFFFFFF, as streamed WAV does)."""
    unknown = 0xFFFFFFFF
    block = channels * bits // 8
    return (
        b"RIFF"
        + struct.pack("<I", unknown)
        + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, channels, rate, rate * block, block, bits)
        + b"data"
        + struct.pack("<I", unknown)
    )


def encode_pcm(pcm: bytes, fmt: str, rate: int) -> bytes:
    """Encode mono int16 PCM at `rate` into one of `ENCODED_FORMATS`."""
    container_fmt, codec, out_rate = ENCODED_FORMATS[fmt]
    samples = np.frombuffer(pcm, dtype="<i2").reshape(1, -1)
    buf = io.BytesIO()
    with av.open(buf, mode="w", format=container_fmt) as container:
        stream = container.add_stream(codec, rate=out_rate, layout="mono")
        assert isinstance(stream, av.AudioStream)
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buf.getvalue()
