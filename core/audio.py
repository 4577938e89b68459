"""Reading speech for the models: any file librosa reads, as 16 kHz mono float32."""

from __future__ import annotations

import os
import warnings

import numpy as np

from .errors import AudioError

SAMPLE_RATE = 16000

# Below this peak level (about -70 dBFS) a clip carries no usable speech: a model would animate noise.
SILENCE_PEAK = 3e-4
# Shorter than two encoder frames there is nothing to animate.
MIN_DURATION_S = 0.1

SUPPORTED_HINT = "Use a wav, flac, ogg or mp3 file with speech in it."


def load_audio(path: str, offset_s: float = 0.0, duration_s: float | None = None) -> np.ndarray:
    """Read `path` (optionally a window of it) resampled to 16 kHz mono float32.

    Raises AudioError with a message naming the file and what to do when the file is missing,
    unreadable, empty or silent.
    """
    if not path:
        raise AudioError("No audio given. Pick a sound strip or an audio file.")
    if not os.path.isfile(path):
        raise AudioError(f"Audio file not found: {path}. Check the path, or pick another file or sound strip.")
    if os.path.getsize(path) == 0:
        raise AudioError(f"Audio file is empty (0 bytes): {path}. {SUPPORTED_HINT}")

    check_wav_complete(path)
    import librosa  # imported here: it is slow to import and only needed when audio is read

    try:
        with warnings.catch_warnings():
            # librosa warns and falls back to audioread for some formats; the result is what matters
            warnings.simplefilter("ignore")
            samples, _ = librosa.load(
                path,
                sr=SAMPLE_RATE,
                mono=True,
                offset=max(0.0, float(offset_s)),
                duration=None if duration_s is None else max(0.0, float(duration_s)),
                res_type="soxr_hq",
            )
    except Exception as exc:  # librosa raises many kinds for corrupt or foreign files
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise AudioError(f"Could not read audio {path}: {reason}. {SUPPORTED_HINT}") from None

    return check_speech(np.ascontiguousarray(samples, dtype=np.float32), path)


def check_wav_complete(path: str) -> None:
    """Refuse a WAV file whose data is shorter than its header says (a cut-off copy or download):
    decoders read what is there silently, and only part of the line would be animated."""
    import struct

    try:
        with open(path, "rb") as handle:
            riff = handle.read(12)
            if len(riff) < 12 or riff[:4] != b"RIFF" or riff[8:12] != b"WAVE":
                return  # not a plain WAV: left to the decoder
            size = os.path.getsize(path)
            rate = block_align = 0
            while True:
                chunk = handle.read(8)
                if len(chunk) < 8:
                    return
                kind, length = chunk[:4], struct.unpack("<I", chunk[4:])[0]
                if kind == b"fmt ":
                    fmt = handle.read(min(length, 16))
                    if len(fmt) >= 16:
                        _, _, rate, _, block_align = struct.unpack("<HHIIH", fmt[:14])
                    handle.seek(length - len(fmt) + (length & 1), os.SEEK_CUR)
                elif kind == b"data":
                    present = size - handle.tell()
                    if length in (0, 0xFFFFFFFF) or present >= length:  # 0 / -1: streamed, length unknown
                        return
                    if block_align and rate:
                        said, held = length / block_align / rate, present / block_align / rate
                        detail = f"its header says {said:.2f} s of sound but the file holds {held:.2f} s"
                    else:
                        detail = f"its header says {length} bytes of sound but the file holds {present}"
                    raise AudioError(f"Audio file {path} is truncated: {detail}. Copy or export it again.")
                else:
                    handle.seek(length + (length & 1), os.SEEK_CUR)
    except OSError as exc:
        raise AudioError(f"Could not read audio {path}: {exc.strerror or exc}. {SUPPORTED_HINT}") from None


def check_speech(samples: np.ndarray, name: str = "audio") -> np.ndarray:
    """Refuse clips that are empty, too short or silent; return the samples unchanged otherwise."""
    if samples.ndim != 1:
        raise AudioError(f"{name}: expected mono samples, got shape {samples.shape}.")
    if samples.size < MIN_DURATION_S * SAMPLE_RATE:
        raise AudioError(
            f"{name} holds {samples.size / SAMPLE_RATE:.2f} s of sound; at least {MIN_DURATION_S} s is needed. "
            "Check the file, or the strip's trim."
        )
    if not np.all(np.isfinite(samples)):
        raise AudioError(f"{name} contains invalid (NaN or infinite) samples. Re-export the audio.")
    peak = float(np.max(np.abs(samples)))
    if peak < SILENCE_PEAK:
        raise AudioError(
            f"{name} is silent (peak level {20 * np.log10(max(peak, 1e-12)):.0f} dBFS). "
            "Pick a clip with speech, or check the strip's volume and trim."
        )
    return samples


def duration_seconds(samples: np.ndarray) -> float:
    return samples.size / SAMPLE_RATE
