"""Encoder features of a training corpus, computed once and kept on disk.

A frozen pretrained encoder costs far more than the decoder's training step, so every clip is
encoded once clean and `variants` times augmented (noise, telephone band, reverberation, gain;
each variant reproducible from the seed), stored as float16 .npy under
`<folder>/<encoder key>/<subject>_<sentence>.<variant>.npy`. A later run with the same encoder
and clips reads them back; changed audio (size or time) is re-encoded.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import zlib
from typing import Callable

import numpy as np
import torch

from .audio import load_audio
from .data import Clip
from .encoders import SpeechEncoder
from .outputs import atomic_output


def encoder_key(encoder: SpeechEncoder) -> str:
    """A folder name that changes whenever the encoder would produce different features."""
    return hashlib.sha256(json.dumps(encoder.config(), sort_keys=True).encode()).hexdigest()[:16]


class FeatureCache:
    def __init__(self, encoder: SpeechEncoder, folder: str, variants: int = 2, seed: int = 0,
                 augment: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None):
        self.encoder = encoder
        self.folder = os.path.join(folder, encoder_key(encoder))
        self.variants = variants if augment is not None else 0
        self.seed = seed
        self.augment = augment
        os.makedirs(self.folder, exist_ok=True)
        with open(os.path.join(self.folder, "encoder.json"), "w", encoding="utf-8") as handle:
            json.dump(encoder.config(), handle)

    def _path(self, clip: Clip, variant: int) -> str:
        stat = os.stat(clip.wav_path)
        stamp = f"{stat.st_size:x}{int(stat.st_mtime):x}"
        return os.path.join(self.folder, f"{clip.subject}_{clip.sentence}.{stamp}.{variant}.npy")

    def features(self, clip: Clip, variant: int = 0) -> np.ndarray:
        """(T50, D) float16 features of the clip's audio; variant 0 is clean, 1.. augmented."""
        path = self._path(clip, variant)
        if os.path.isfile(path):
            return np.load(path)
        audio = load_audio(clip.wav_path)
        if variant:
            name_seed = zlib.crc32(f"{clip.subject}_{clip.sentence}".encode())
            audio = self.augment(audio, np.random.default_rng([self.seed, name_seed, variant]))
        feats = self.encoder.encode(audio, torch.device("cpu")).cpu().numpy().astype(np.float16)
        with atomic_output(path) as handle:
            np.save(handle, feats)
        return feats

    def fill(self, clips: list[Clip], log: Callable[[str], None] = print) -> None:
        """Encode whatever is missing, with progress and an ETA."""
        todo = [(c, v) for c in clips for v in range(self.variants + 1) if not os.path.isfile(self._path(c, v))]
        if not todo:
            return
        log(f"encoding {len(todo)} clip variants with {self.encoder.config()['type']} into {self.folder}")
        started = time.time()
        for done, (clip, variant) in enumerate(todo, 1):
            self.features(clip, variant)
            if done % 50 == 0 or done == len(todo):
                rate = done / (time.time() - started)
                log(f"encoded {done}/{len(todo)}, ETA {(len(todo) - done) / rate / 60:.1f} min")
