"""A contact sheet of every /p b m/ in a clip, mouth close-up: the way to look at seals, not only count them.

    .venv/bin/python tools/bilabial_sheet.py --audio CLIP.wav [--transcript TEXT|@FILE] [--out docs/bilabials.png]
        [--model default] [--head HEAD.ply]

Animates the clip as Generate does (the words transcribed, or the transcript given, aligned), then
renders the frame in the middle of each bilabial the words hold, in time order, with the template
at rest last for reference; prints each bilabial's word, time and lip-line gap over rest (mm).
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--audio", required=True)
    parser.add_argument("--transcript", default=None)
    parser.add_argument("--out", default=os.path.join(REPO, "docs", "bilabials.png"))
    parser.add_argument("--model", default="default")
    parser.add_argument("--head", default=os.path.join(os.path.dirname(REPO), "shared", "flame", "FLAME_sample.ply"))
    parser.add_argument("--columns", type=int, default=6)
    args = parser.parse_args()

    from core.audio import load_audio
    from core.flame import load_flame_mesh
    from core.lips import LipLine
    from core.models import Conditioning, load_model
    from core.pipeline import animate
    from core.preview import frame_bounds, grid, render, write_png
    from core.speech import read_transcript_option, speech_timing

    template, triangles = load_flame_mesh(args.head)
    audio = load_audio(args.audio)
    speech = speech_timing(audio, read_transcript_option(args.transcript))
    for warning in speech.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    motion = animate(audio, template, triangles, load_model(args.model), Conditioning(speech=speech), 30.0)
    vertices = motion.vertices(template)
    gaps = LipLine(template).excess_mm(vertices)
    _, half = frame_bounds(template)
    centre = template[[2708, 1572]].mean(axis=0) + np.array([0.0, -0.003, 0.0])
    images = []
    for word in speech.words:
        for phone, start, end in speech.phones:
            if phone in ("P", "B", "M") and word.start_s <= start < word.end_s:
                frame = min(int(round((start + end) / 2 * 30)), len(vertices) - 1)
                print(f"{word.text:>14} /{phone.lower()}/ at {(start + end) / 2:5.2f} s: lip line {gaps[frame]:+.2f} mm")
                images.append(render(vertices[frame], triangles, "front", 160, bounds=(centre, half), crop=0.26))
    images.append(render(template, triangles, "front", 160, bounds=(centre, half), crop=0.26))
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    write_png(args.out, grid(images, columns=args.columns))
    print(f"wrote {args.out}: {len(images) - 1} bilabials, then the template at rest", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
