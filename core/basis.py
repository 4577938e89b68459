"""Writing motion as a few shape keys: offsets == mean + coefficients @ basis."""

from __future__ import annotations

import numpy as np


def reconstruct(mean: np.ndarray, basis: np.ndarray, coefficients: np.ndarray) -> np.ndarray:
    """Offsets (T, V, 3) float32 from mean (V, 3), basis (K, V, 3) and coefficients (T, K).
    float32 stays far below the 0.1 mm the writers promise and halves the memory of long takes."""
    flat = coefficients.astype(np.float32) @ basis.reshape(len(basis), -1).astype(np.float32)
    return flat.reshape(len(coefficients), -1, 3) + mean.astype(np.float32)


def pca_basis(offsets: np.ndarray, tolerance_m: float = 2e-5, max_keys: int = 64) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean (V,3), basis (K,V,3), coefficients (T,K) reproducing `offsets` (T,V,3) within
    `tolerance_m` per vertex, with as few keys as that allows (at most `max_keys`, else exact)."""
    n_frames, n_vertices, _ = offsets.shape
    flat = offsets.reshape(n_frames, -1).astype(np.float64)
    mean = flat.mean(axis=0)
    u, s, vt = np.linalg.svd(flat - mean, full_matrices=False)
    keep = len(s)
    for k in range(0, min(len(s), max_keys) + 1):
        approx = mean + (u[:, :k] * s[:k]) @ vt[:k]
        err = np.linalg.norm((approx - flat).reshape(n_frames, n_vertices, 3), axis=2).max()
        if err <= tolerance_m:
            keep = k
            break
    coefficients = u[:, :keep] * s[:keep]
    return (
        mean.reshape(n_vertices, 3).astype(np.float32),
        vt[:keep].reshape(keep, n_vertices, 3).astype(np.float32),
        coefficients.astype(np.float32),
    )
