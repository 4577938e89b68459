"""Frame timing: from the model's motion rate to the scene's, without drift.

Frame k of a clip shows the face at time k / fps after the sound starts, at any rate; resampling
interpolates the model's frames at exactly those times, so 29.97 fps or 24 fps clips end on the
frame where the sound ends instead of accumulating rounding error.
"""

from __future__ import annotations

import math

import numpy as np

from .errors import OutputError

# frame rates animation is made at lie well inside this; outside it a typo (1e6, inf) would ask
# for millions of frames
MIN_FPS, MAX_FPS = 1.0, 240.0


def check_fps(fps: float, what: str = "--fps", error: type[Exception] = OutputError) -> float:
    """`fps` if it is a usable frame rate (1 to 240), else `error` saying so."""
    if not isinstance(fps, (int, float)) or not math.isfinite(fps) or not MIN_FPS <= fps <= MAX_FPS:
        raise error(f"{what} must be a frame rate from {MIN_FPS:g} to {MAX_FPS:g}, got {fps}.")
    return float(fps)


def frame_count(duration_s: float, fps: float) -> int:
    """Frames covering `duration_s` at `fps`: round(duration x fps), at least one."""
    return max(1, int(round(duration_s * fps)))


def resample_frames(frames: np.ndarray, src_fps: float, dst_fps: float, duration_s: float) -> np.ndarray:
    """Linearly resample `frames` (T, ...) from `src_fps` to `dst_fps`, covering `duration_s`."""
    frames = np.asarray(frames)
    n_out = frame_count(duration_s, dst_fps)
    if abs(src_fps - dst_fps) < 1e-9 and len(frames) == n_out:
        return frames.copy()
    positions = np.arange(n_out, dtype=np.float64) * (src_fps / dst_fps)
    positions = np.clip(positions, 0.0, len(frames) - 1)
    lower = np.floor(positions).astype(np.int64)
    upper = np.minimum(lower + 1, len(frames) - 1)
    weight = (positions - lower).reshape((-1,) + (1,) * (frames.ndim - 1)).astype(frames.dtype)
    return frames[lower] * (1 - weight) + frames[upper] * weight
