"""Synthesised speech with exact phoneme timing, from Debian's festival.

festival's `utt.save.segs` writes each segment's end time, which is the ground truth the motion
generator aligns visemes to. Voices differ by speaker; each speaker also gets its own speaking
rate (Duration_Stretch) and pitch shift (sox, which keeps timing).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass

import numpy as np

SAMPLE_RATE = 16000

FESTIVAL_VOICES = {
    "kal": "voice_kal_diphone",
    "ked": "voice_ked_diphone",
    "slt": "voice_cmu_us_slt_arctic_hts",
}

# festival's US phone set -> ARPAbet as in the CMU dictionary; silences -> SIL
# schwa stays AX: it is not an open vowel, and the rig gives it a small opening
_PHONE_MAP = {"pau": "SIL", "h#": "SIL", "brth": "SIL", "ax": "AX", "axr": "ER", "dx": "D", "nx": "N", "el": "L",
              "em": "M", "en": "N", "hv": "HH"}


@dataclass
class Phone:
    phone: str  # ARPAbet, or SIL
    start: float  # seconds
    end: float


def require_tools() -> None:
    """Say clearly what to install when the synthesiser is missing."""
    missing = [tool for tool in ("festival", "sox") if shutil.which(tool) is None]
    if missing:
        raise RuntimeError(
            f"The corpus generator needs {' and '.join(missing)}: "
            "apt-get install festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts sox"
        )


def available_voices() -> list[str]:
    """Voices whose festival data is installed."""
    roots = ["/usr/share/festival/voices"]
    found = set()
    for root in roots:
        for dirpath, dirnames, _ in os.walk(root):
            found.update(dirnames)
    names = {"kal": "kal_diphone", "ked": "ked_diphone", "slt": "cmu_us_slt_arctic_hts"}
    return [voice for voice, folder in names.items() if folder in found]


def parse_segs(text: str) -> list[Phone]:
    phones: list[Phone] = []
    previous_end = 0.0
    started = False
    for line in text.splitlines():
        if line.strip() == "#":
            started = True
            continue
        parts = line.split()
        if not started or len(parts) < 3:
            continue
        end, name = float(parts[0]), parts[2]
        phone = _PHONE_MAP.get(name, name.upper())
        phones.append(Phone(phone, previous_end, end))
        previous_end = end
    return phones


def synthesise(text: str, voice: str, stretch: float = 1.0, pitch_cents: float = 0.0, volume: float = 1.0
               ) -> tuple[np.ndarray, list[Phone]]:
    """16 kHz mono float32 samples and their phone timing for `text` spoken by festival `voice`."""
    import librosa
    import soundfile

    require_tools()
    safe = text.replace("\\", " ").replace('"', " ")
    with tempfile.TemporaryDirectory(prefix="th_tts_") as tmp:
        raw, segs, shifted = (os.path.join(tmp, name) for name in ("raw.wav", "utt.segs", "shifted.wav"))
        script = os.path.join(tmp, "say.scm")
        with open(script, "w", encoding="utf-8") as handle:
            handle.write(f'({FESTIVAL_VOICES[voice]})\n'
                         f"(Parameter.set 'Duration_Stretch {stretch:.4f})\n"
                         f'(set! utt (SynthText "{safe}"))\n'
                         f'(utt.save.wave utt "{raw}")\n'
                         f'(utt.save.segs utt "{segs}")\n')
        subprocess.run(["festival", "-b", script], check=True, capture_output=True, timeout=120)
        source = raw
        if abs(pitch_cents) > 1:
            # -D: no dither, so the same seed gives the same audio
            subprocess.run(["sox", "-D", raw, shifted, "pitch", f"{pitch_cents:.0f}"], check=True, capture_output=True)
            source = shifted
        samples, rate = soundfile.read(source, dtype="float32", always_2d=True)
        samples = samples.mean(axis=1)
        if rate != SAMPLE_RATE:
            samples = librosa.resample(samples, orig_sr=rate, target_sr=SAMPLE_RATE, res_type="soxr_hq")
        with open(segs, encoding="utf-8") as handle:
            phones = parse_segs(handle.read())
    peak = float(np.abs(samples).max()) or 1.0
    return (samples / peak * 0.8 * volume).astype(np.float32), phones
