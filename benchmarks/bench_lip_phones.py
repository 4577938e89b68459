"""Lips on real and held-out speech, measured on the visible lip line (core.evaluate.LineTally),
with the phones three ways: none (the model's phonetic head alone), transcribed by Whisper, and
the true transcript given; `off` is the model with no phone layer (as before it).

    .venv/bin/python benchmarks/bench_lip_phones.py DIR [DIR ...] [--model default] [--modes off,none,whisper,given]
        [--asterisk-heldout DIR] [--json out.json] [--template HEAD.ply]

Each DIR holds clips `NAME.wav` with their reference alignment `NAME.phone.json` (what is measured
against) and transcript `NAME.txt` (or the alignment's "t"), as tools/heldout_speech.py and
tools/real_speech.py write them. `--asterisk-heldout DIR` takes only the Asterisk prompts that
corpus-recorded held out of training (the same seeded split). Prints per set and pooled:
/p b m/ sealed, tongue stops sealed, aperture over width (95th and 99th percentile over speech),
open vowels, pauses (lip gap and face offset), and the seconds per minute of speech.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def clips_of(folder: str) -> list[tuple[str, str]]:
    """[(wav, transcript)] of clips with a reference alignment."""
    out = []
    for wav in sorted(glob.glob(os.path.join(folder, "*.wav"))):
        stem = wav[: -len(".wav")]
        if not os.path.isfile(stem + ".phone.json"):
            continue
        if os.path.isfile(stem + ".txt"):
            text = open(stem + ".txt", encoding="utf-8").read().strip()
        else:
            text = json.load(open(stem + ".phone.json", encoding="utf-8")).get("t", "")
        out.append((wav, text))
    return out


def join_clips(group, gap_s: float, load_audio, read_phone_alignment):
    """(audio, reference phones, transcript) of clips played one after another with `gap_s` of
    silence before each."""
    parts, phones, texts, start = [], [], [], 0.0
    for wav, text in group:
        audio = load_audio(wav)
        silence = np.zeros(int(round(gap_s * 16000)) if len(group) > 1 else 0, dtype=np.float32)
        start += len(silence) / 16000
        if len(silence):
            phones.append(("SIL", start - len(silence) / 16000, start))
        phones += [(p, a + start, b + start) for p, a, b in read_phone_alignment(wav[: -len(".wav")] + ".phone.json")]
        parts += [silence, audio]
        texts.append(text)
        start += len(audio) / 16000
    return np.concatenate(parts), phones, " ".join(texts)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="*")
    parser.add_argument("--asterisk-heldout", default=None)
    parser.add_argument("--model", default="default")
    parser.add_argument("--modes", default="none,whisper,given")
    parser.add_argument("--template", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared", "flame",
                                                           "FLAME_sample.ply"))
    parser.add_argument("--join", type=int, default=1,
                        help="join every N clips of a set into one, with --gap seconds of silence between them, "
                             "so sets of short prompts have pauses too (default 1: as they are)")
    parser.add_argument("--gap", type=float, default=0.8)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(2)
    from core.audio import load_audio
    from core.evaluate import LineTally, SealTally, read_phone_alignment
    from core.flame import load_flame_mesh
    from core.lips import LipContact, LipLine
    from core.models import Conditioning, load_model
    from core.pipeline import predict_motion
    from core.speech import speech_timing

    model = load_model(args.model)
    template, triangles = load_flame_mesh(args.template)
    template = template.astype(np.float64)
    line, contact = LipLine(template), LipContact(template, triangles)
    sets = {os.path.basename(os.path.normpath(f)): clips_of(f) for f in args.folders}
    if args.asterisk_heldout:
        from core.phone_fit import aligned_recordings, split_holdout

        held = split_holdout(aligned_recordings([args.asterisk_heldout]), 0.2, 0)[1]
        sets["asterisk_heldout"] = [(w, json.load(open(a, encoding="utf-8")).get("t", "")) for w, a in held]
    modes = args.modes.split(",")
    results: dict = {}
    pooled = {mode: (LineTally(), SealTally()) for mode in modes}
    speech_seconds = 0.0
    seconds = {mode: 0.0 for mode in modes}
    for name, clips in sets.items():
        for mode in modes:
            tally, seal = LineTally(), SealTally()
            for group in [clips[i:i + args.join] for i in range(0, len(clips), args.join)]:
                audio, phones, text = join_clips(group, args.gap, load_audio, read_phone_alignment)
                start = time.perf_counter()
                timing = None if mode in ("none", "off") else speech_timing(audio, text if mode == "given" else None)
                prediction = predict_motion(model, audio, template, triangles, Conditioning(speech=timing),
                                            layer=mode != "off")
                vertices = template + prediction.vertex_offsets()
                seconds[mode] += time.perf_counter() - start
                for t in (tally, pooled[mode][0]):
                    t.add(vertices, template, phones, line=line)
                for s in (seal, pooled[mode][1]):
                    s.add(contact.excess_mm(vertices), phones)
                if mode == modes[0]:
                    speech_seconds += len(audio) / 16000
            results.setdefault(name, {})[mode] = {**tally.summary(), "edge_seal_rate": seal.summary()["seal_rate"]}
            _print(f"{name} [{mode}] ({len(clips)} recordings)", results[name][mode])
    for mode in modes:
        tally, seal = pooled[mode]
        results.setdefault("pooled", {})[mode] = {**tally.summary(), "edge_seal_rate": seal.summary()["seal_rate"],
                                                  "seconds_per_minute": seconds[mode] / max(speech_seconds, 1e-9) * 60}
        _print(f"pooled [{mode}]", results["pooled"][mode])
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(results, handle, indent=1)
    return 0


def _print(title: str, values: dict) -> None:
    shown = ", ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items())
    print(f"{title}: {shown}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
