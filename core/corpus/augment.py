"""Corpus-level augmentation: extra copies of a clip whose audio is perturbed for robustness.

Speed perturbation changes timing, so it rescales the phone times and the motion is rebuilt from
them (the copy stays exactly in sync). Pitch, noise, room reverberation and telephone band-limiting
leave timing alone. sox does the signal processing, without dither, so a seed gives one result.
"""

from __future__ import annotations

import os
import subprocess
import tempfile

import numpy as np

from .speech import SAMPLE_RATE, Phone

KINDS = ("speed", "pitch", "noise", "reverb", "telephone")


def augment_clip(audio: np.ndarray, phones: list[Phone], rng: np.random.Generator, kinds: tuple[str, ...] = KINDS
                 ) -> tuple[np.ndarray, list[Phone], dict]:
    """A perturbed copy of (audio, phones) and a record of what was done. Each kind in `kinds` is
    applied with probability 0.5, at least one of them always."""
    import soundfile

    unknown = set(kinds) - set(KINDS)
    if unknown:
        raise ValueError(f"Unknown augmentation {', '.join(sorted(unknown))}; choose from {', '.join(KINDS)}.")
    chosen = [k for k in kinds if rng.random() < 0.5] or [kinds[int(rng.integers(len(kinds)))]]
    record: dict = {}
    effects: list[str] = []
    speed = 1.0
    if "speed" in chosen:
        speed = float(rng.uniform(0.9, 1.1))
        effects += ["speed", f"{speed:.4f}", "rate", str(SAMPLE_RATE)]
        record["speed"] = speed
    if "pitch" in chosen:
        cents = float(rng.uniform(-300, 300))
        effects += ["pitch", f"{cents:.0f}", "rate", str(SAMPLE_RATE)]
        record["pitch_cents"] = cents
    if "reverb" in chosen:
        reverberance, room = float(rng.uniform(20, 80)), float(rng.uniform(30, 100))
        effects += ["reverb", f"{reverberance:.0f}", "50", f"{room:.0f}"]
        record["reverb"] = {"reverberance": reverberance, "room_scale": room}
    if "telephone" in chosen:
        effects += ["sinc", "300-3400"]
        record["telephone"] = True
    out = np.asarray(audio, dtype=np.float32)
    if effects:
        with tempfile.TemporaryDirectory(prefix="th_aug_") as tmp:
            src, dst = os.path.join(tmp, "in.wav"), os.path.join(tmp, "out.wav")
            soundfile.write(src, out, SAMPLE_RATE, subtype="FLOAT")
            subprocess.run(["sox", "-D", src, dst, *effects, "channels", "1"], check=True, capture_output=True)
            out, _ = soundfile.read(dst, dtype="float32")
        out = out[: int(round(len(audio) / speed))]  # reverb adds a tail; the clip keeps its length
    if "noise" in chosen:
        snr = float(rng.uniform(10, 30))
        power = float(np.mean(out**2)) + 1e-12
        out = out + rng.normal(size=len(out)).astype(np.float32) * np.sqrt(power / 10 ** (snr / 10))
        record["noise_snr_db"] = snr
    out = out / (np.abs(out).max() + 1e-9) * 0.8
    scaled = [Phone(p.phone, p.start / speed, p.end / speed) for p in phones]
    return out.astype(np.float32), scaled, record
