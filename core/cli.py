"""`python -m core ...`: Talking Head without Blender.

    python -m core animate --audio speech.wav --template head.ply --out motion.npy
"""

from __future__ import annotations

import argparse
import os
import sys

from .errors import TalkingHeadError
from .models.base import EMOTIONS


def _add_generation_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=None, help="model name in the weights folders, or a model folder (default: 'default')")
    parser.add_argument("--emotion", default="neutral", choices=EMOTIONS)
    parser.add_argument("--intensity", type=float, default=1.0, help="emotion intensity, 0 to 1")
    parser.add_argument("--style", default=None, help="speaking style name")
    parser.add_argument("--seed", type=int, default=0, help="random seed (models that sample)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m core", description="Talking Head: speech to FLAME facial animation.")
    commands = parser.add_subparsers(dest="command", required=True)

    animate = commands.add_parser("animate", help="animate a FLAME template from an audio file")
    animate.add_argument("--audio", required=True, help="speech file (wav, flac, ogg, mp3; any rate, mono or stereo)")
    animate.add_argument("--template", required=True, help="FLAME-topology neutral head (.ply, .obj or .npy)")
    animate.add_argument("--out", required=True, help="output .npy (frames, 5023, 3) or .pc2 of absolute positions")
    animate.add_argument("--fps", type=float, default=30.0, help="output frame rate (default 30)")
    animate.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    _add_generation_options(animate)
    return parser


def cmd_animate(args: argparse.Namespace) -> int:
    from .audio import load_audio
    from .device import pick_device
    from .errors import OutputError
    from .flame import load_template
    from .mesh_io import read_mesh, write_npy, write_pc2
    from .models import Conditioning, load_model
    from .pipeline import animate

    ext = os.path.splitext(args.out)[1].lower()
    if ext not in (".npy", ".pc2"):
        raise OutputError(f"Output must end in .npy or .pc2, got '{args.out}'.")
    if os.path.exists(args.out) and not args.overwrite:
        raise OutputError(f"{args.out} already exists; pass --overwrite to replace it or choose another --out.")
    if not args.fps > 0:
        raise OutputError(f"--fps must be positive, got {args.fps}.")

    template = load_template(args.template)
    _, triangles = read_mesh(args.template)
    audio = load_audio(args.audio)
    conditioning = Conditioning(emotion=args.emotion, intensity=args.intensity, style=args.style, seed=args.seed).validate()
    model = load_model(args.model, device=pick_device(args.device))
    motion = animate(audio, template, triangles, model, conditioning, args.fps)
    vertices = motion.vertices(template)
    if ext == ".npy":
        write_npy(args.out, vertices)
    else:
        write_pc2(args.out, vertices, start_frame=0.0, sampling=1.0)
    print(f"wrote {args.out}: {vertices.shape[0]} frames at {args.fps:g} fps ({motion.duration_s:.2f} s)", file=sys.stderr)
    return 0


COMMANDS = {"animate": cmd_animate}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except TalkingHeadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted; nothing was written.", file=sys.stderr)
        return 130
