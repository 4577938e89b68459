"""Speech encoders: 16 kHz samples -> feature frames at 50 Hz, resampled to the motion rate.

Every encoder has the same two methods, so decoders do not care which one feeds them. The
log-mel encoder needs no weights; pretrained encoders (wav2vec 2.0, Whisper) plug in behind the
same interface.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F

FEATURE_RATE = 50.0  # frames per second the encoders produce, as wav2vec 2.0 and Whisper do


class SpeechEncoder(Protocol):
    feature_dim: int

    def config(self) -> dict:
        """JSON-able description from which `build_encoder` rebuilds this encoder."""
        ...

    def encode(self, audio: np.ndarray, device: torch.device) -> torch.Tensor:
        """(T50, feature_dim) features at FEATURE_RATE for 16 kHz mono samples."""
        ...


class LogMelEncoder:
    """Log mel filterbank energies, normalised per clip so loudness and channel matter less."""

    def __init__(self, n_mels: int = 80, sample_rate: int = 16000):
        import librosa

        self.n_mels = n_mels
        self.sample_rate = sample_rate
        self.n_fft = 400  # 25 ms window
        self.hop = int(sample_rate / FEATURE_RATE)  # 20 ms hop
        self.feature_dim = n_mels
        self._filters = torch.from_numpy(
            librosa.filters.mel(sr=sample_rate, n_fft=self.n_fft, n_mels=n_mels, fmin=20, fmax=7600)
        ).float()

    def config(self) -> dict:
        return {"type": "logmel", "n_mels": self.n_mels}

    def encode(self, audio: np.ndarray, device: torch.device) -> torch.Tensor:
        samples = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)).to(device)
        window = torch.hann_window(self.n_fft, device=device)
        spec = torch.stft(samples, self.n_fft, self.hop, window=window, center=True, return_complex=True)
        mel = self._filters.to(device) @ spec.abs().pow(2)  # (n_mels, frames)
        logmel = torch.log(mel + 1e-6).T
        n_frames = int(round(len(audio) / self.hop))
        logmel = logmel[: max(1, n_frames)]
        return (logmel - logmel.mean(0)) / (logmel.std(0) + 1e-5)


def build_encoder(config: dict) -> SpeechEncoder:
    kind = config.get("type")
    if kind == "logmel":
        return LogMelEncoder(n_mels=int(config.get("n_mels", 80)))
    from .errors import ModelError

    raise ModelError(f"Unknown speech encoder '{kind}' in the model's config.json; update Talking Head.")


def resample_features(features: torch.Tensor, n_frames: int) -> torch.Tensor:
    """Linearly resample (T, D) features to `n_frames` frames (the motion rate)."""
    if features.shape[0] == n_frames:
        return features
    return F.interpolate(features.T.unsqueeze(0), size=n_frames, mode="linear", align_corners=True)[0].T
