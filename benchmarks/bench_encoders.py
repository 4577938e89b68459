"""Speech encoders: first-use conversion of Whisper tiny.en, agreement with CTranslate2, speed.

    .venv/bin/python benchmarks/bench_encoders.py
"""

from __future__ import annotations

import glob
import os
import sys
import tempfile
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from core import encoders, whisper  # noqa: E402
from core.audio import load_audio  # noqa: E402
from core.flame import SHARED_FLAME  # noqa: E402


def main() -> int:
    clips = [load_audio(p) for p in sorted(glob.glob(os.path.join(SHARED_FLAME, "..", "audio", "librivox", "*.wav")))]
    folder = whisper.resolve_source("tiny.en")
    with tempfile.TemporaryDirectory() as cache:
        started = time.perf_counter()
        network = whisper.load_whisper_encoder(folder, cache_dir=cache)
        convert = time.perf_counter() - started
        started = time.perf_counter()
        whisper.load_whisper_encoder(folder, cache_dir=cache)
        cached = time.perf_counter() - started
        size = sum(os.path.getsize(p) for p in glob.glob(os.path.join(cache, "encoders", "*", "*")))
    print(f"Whisper tiny.en encoder: conversion from CTranslate2 {convert:.2f} s, cached load {cached:.2f} s, "
          f"cache {size / 1e6:.1f} MB")
    try:
        import ctranslate2

        reference_model = ctranslate2.models.Whisper(folder, device="cpu", compute_type="float32")
        worst = 0.0
        for audio in clips:
            mel = whisper.log_mel(audio)
            with torch.no_grad():
                mine = network(mel.unsqueeze(0))[0].numpy()
            reference = np.array(reference_model.encode(ctranslate2.StorageView.from_array(mel.unsqueeze(0).numpy()),
                                                        to_cpu=True))[0]
            worst = max(worst, float(np.abs(mine - reference).max() / np.abs(reference).max()))
        print(f"largest difference from CTranslate2's encoder over {len(clips)} LibriVox clips: {worst:.2e} (relative)")
    except ImportError:
        print("ctranslate2 not installed: no reference comparison")
    audio = np.concatenate(clips * 20)[: 16000 * 60]
    # wav2vec 2.0 base: its weights cannot be had here, but its cost does not depend on them
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    with tempfile.TemporaryDirectory() as base:
        torch.manual_seed(0)
        Wav2Vec2Model(Wav2Vec2Config()).save_pretrained(base)
        configs = [{"type": "logmel"}, {"type": "whisper", "source": "tiny.en"}, {"type": "wav2vec2", "source": base}]
        for config in configs:
            _time(config, audio)
    return 0


def _time(config: dict, audio: np.ndarray) -> None:
    encoder = encoders.build_encoder(config)
    encoder.encode(audio[:16000 * 5], torch.device("cpu"))  # warm up
    started = time.perf_counter()
    features = encoder.encode(audio, torch.device("cpu"))
    label = "wav2vec2-base (random weights)" if config["type"] == "wav2vec2" else config["type"]
    print(f"{label}: 60 s of speech -> {tuple(features.shape)} in {time.perf_counter() - started:.2f} s")


if __name__ == "__main__":
    sys.exit(main())
