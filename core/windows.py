"""Long sequences in overlapping windows: the encoders and every decoder cut audio or motion this
way and cross-fade the seams (kept below encoders.py and whisper.py, which both use it)."""

from __future__ import annotations

import torch


def overlapped_windows(n_frames: int, window: int, overlap: int) -> list[tuple[int, int]]:
    """(start, end) windows of `window` frames covering `n_frames`, each overlapping the last by `overlap`."""
    overlap = min(overlap, window // 2)
    starts = range(0, max(1, n_frames - overlap), window - overlap)
    return [(start, min(start + window, n_frames)) for start in starts]


def crossfade_into(out: torch.Tensor, start: int, end: int, chunk: torch.Tensor, overlap: float) -> None:
    """Write a window's frames into `out`, fading linearly from what is there over the overlap:
    a window's first frames lack left context, so they fade in rather than cut."""
    if start == 0:
        out[:end] = chunk
        return
    blend = min(int(overlap), end - start)
    ramp = torch.linspace(0.0, 1.0, blend + 2, device=out.device)[1:-1].unsqueeze(1)
    out[start:start + blend] = out[start:start + blend] * (1 - ramp) + chunk[:blend] * ramp
    out[start + blend:end] = chunk[blend:]
