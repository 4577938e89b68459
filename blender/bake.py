"""`blender shot.blend -c talking_head bake ...` and `python -m talking_head bake ...`: batch baking.

One shot from flags, or many from a JSON shot list. Each shot opens its .blend, generates through
the same path as the Generate button, and saves to its output file (never over the input unless
--overwrite-input). A failing shot is reported and the others still run; the exit code is 0 only
when every shot succeeded.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time

import bpy

from ..core.cli import add_device_option, add_transcript_options, model_help
from ..core.errors import OutputError, TalkingHeadError
from ..core.models.base import EMOTIONS, FROM_AUDIO, Conditioning
from ..core.speech import read_transcript_option
from ..core.outputs import check_output, claim_outputs, publish, temp_name, terminate_cleanly
from ..core.shots import read_shot_list, shot_problem
from .audio_source import from_file, from_strip
from .job import apply, collect_request, compute



def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="talking_head bake", description="Bake speech animation onto FLAME heads in .blend files.")
    parser.add_argument("--shots", help="JSON list of shots (each: blend, object, audio or strip, options)")
    parser.add_argument("--blend", help="the .blend to bake (default: the file Blender opened)")
    parser.add_argument("--object", help="name of the FLAME head object")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--strip", help="name of the sound strip with the speech")
    source.add_argument("--audio", help="audio file with the speech")
    parser.add_argument("--mode", choices=("shapekeys", "cache"), default="shapekeys",
                        help="shapekeys: shape keys driven by one Action (editable); cache: a .pc2 vertex cache played "
                             "by a Mesh Cache modifier (default shapekeys)")
    parser.add_argument("--model", default=None, help=model_help())
    parser.add_argument("--emotion", choices=EMOTIONS + (FROM_AUDIO,), default="neutral",
                        help="emotion (models with emotion control; from_audio: heard in the voice)")
    parser.add_argument("--intensity", type=float, default=1.0, help="emotion intensity, 0 to 1 (default 1)")
    parser.add_argument("--style", default=None,
                        help="a style the model was trained with, or an adapted style file's name or path")
    parser.add_argument("--styles-dir", default="",
                        help="folder of style files (also searched: styles/ beside the .blend, TALKING_HEAD_STYLES)")
    parser.add_argument("--start-frame", type=int, default=None,
                        help="frame where the speech starts (default: the strip's start, or the scene start for --audio)")
    parser.add_argument("--output", help="where to save the baked .blend (default: <input>_talkinghead.blend)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing output .blend and its vertex caches (without it they are kept and "
                             "the shot fails, as `animate` does)")
    parser.add_argument("--overwrite-input", action="store_true", help="save over the input .blend")
    parser.add_argument("--keep-takes", action="store_true",
                        help="keep the object's earlier Action (or cache) as a named take instead of replacing it")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the (first) take, for models that sample; take k uses seed + k - 1")
    parser.add_argument("--takes", type=int, default=1,
                        help="different takes to make, each its own Action or cache file (models that sample)")
    parser.add_argument("--guidance", type=float, default=None,
                        help="models that sample: how tightly takes follow the audio, 1 (none) to 20 (default: the model's)")
    parser.add_argument("--lip-seal", type=float, default=None, metavar="STRENGTH",
                        help="close the lips to contact at the /p b m/ the model hears, 0 (off) to 1 (default: the model's own)")
    add_transcript_options(parser)
    parser.add_argument("--word-markers", action="store_true", help="a timeline marker at the start of every word")
    parser.add_argument("--cache-folder", default="", help="vertex cache folder (default: beside the output .blend)")
    add_device_option(parser)
    return parser


def shots_from_args(args: argparse.Namespace) -> list[dict]:
    if args.shots:
        return read_shot_list(args.shots)
    blend = args.blend or bpy.data.filepath
    shot = {"blend": blend, "object": args.object, "audio": args.audio, "strip": args.strip, "mode": args.mode,
            "model": args.model, "emotion": args.emotion, "intensity": args.intensity, "style": args.style,
            "styles_dir": args.styles_dir, "start_frame": args.start_frame, "output": args.output, "overwrite": args.overwrite, "device": args.device,
            "keep_takes": args.keep_takes, "cache_folder": args.cache_folder, "overwrite_input": args.overwrite_input,
            "seed": args.seed, "takes": args.takes, "guidance": args.guidance, "lip_seal": args.lip_seal,
             "transcript": args.transcript, "transcribe": not args.no_transcribe,
             "word_markers": args.word_markers}
    return [shot]


def output_path(blend: str, output: str | None, overwrite_input: bool) -> str:
    if output:
        output = os.path.abspath(output)
        if os.path.normpath(output) == os.path.normpath(os.path.abspath(blend)) and not overwrite_input:
            raise OutputError(f"--output is the input file {blend}; pass --overwrite-input to save over it.")
        return output
    if overwrite_input:
        return os.path.abspath(blend)
    stem, _ = os.path.splitext(os.path.abspath(blend))
    return stem + "_talkinghead.blend"


def bake_shot(shot: dict) -> str:
    """Bake one shot and save it; returns a summary line. Raises TalkingHeadError on bad input."""
    problem = shot_problem(shot)
    if problem:
        raise OutputError(problem)
    blend = shot.get("blend")
    if not blend:
        raise OutputError("No .blend given: open one in Blender, or pass --blend FILE (or 'blend' in the shot list).")
    if not os.path.isfile(blend):
        raise OutputError(f".blend file not found: {blend}.")
    if not shot.get("object"):
        raise OutputError("No object given: pass --object NAME (or 'object' in the shot list).")
    if bool(shot.get("audio")) == bool(shot.get("strip")):
        raise OutputError("Give exactly one of --audio FILE or --strip NAME (or 'audio'/'strip' in the shot list).")
    replace = bool(shot.get("overwrite") or shot.get("overwrite_input"))
    out = check_output(output_path(blend, shot.get("output"), bool(shot.get("overwrite_input"))), replace)
    with claim_outputs([out]):  # a second bake of the same output fails now; this one's result survives
        return _bake_claimed(shot, blend, out, replace)


def _bake_claimed(shot: dict, blend: str, out: str, replace: bool) -> str:
    """Open the shot, generate, and save it to `out`, holding claims on `out` and its caches."""
    if os.path.normpath(bpy.data.filepath) != os.path.normpath(os.path.abspath(blend)) or bpy.data.is_dirty:
        bpy.ops.wm.open_mainfile(filepath=os.path.abspath(blend), load_ui=False)
    scene = bpy.context.scene
    obj = bpy.data.objects.get(shot["object"])
    if obj is None:
        names = ", ".join(o.name for o in bpy.data.objects if o.type == "MESH") or "none"
        raise OutputError(f"No object '{shot['object']}' in {blend} (meshes: {names}).")
    if shot.get("strip"):
        source = from_strip(scene, shot["strip"])
    else:
        source = from_file(shot["audio"], scene.frame_start if shot.get("start_frame") is None else shot["start_frame"])
    mode = str(shot.get("mode") or "shapekeys").upper()
    request = collect_request(
        scene, obj, source,
        Conditioning(emotion=shot.get("emotion") or "neutral", intensity=1.0 if shot.get("intensity") is None else float(shot["intensity"]),
                     style=shot.get("style") or None, seed=int(shot.get("seed") or 0), guidance=_number_or_none(shot.get("guidance")),
                     lip_seal=_number_or_none(shot.get("lip_seal"))),
        model=shot.get("model"), device=shot.get("device") or "auto", mode=mode,
        keep_takes=bool(shot.get("keep_takes")), start_frame=shot.get("start_frame"),
        cache_folder=shot.get("cache_folder") or os.path.dirname(out), blend_path=out,
        style_dirs=[shot.get("styles_dir") or "", os.path.join(os.path.dirname(os.path.abspath(blend)), "styles")],
        takes=int(shot.get("takes") or 1), replace_caches=replace,
        transcript=read_transcript_option(shot.get("transcript")), transcribe=shot.get("transcribe") is not False,
        word_markers=bool(shot.get("word_markers")),
    )
    with claim_outputs(request.cache_files):
        takes = compute(request)
        summary = apply(request, takes)
        save_blend(out, replace)
    return f"{summary}; saved {out}"


def save_blend(out: str, replace: bool) -> None:
    """Save a copy of the open file to `out` through a temporary file beside it, so a crash or a
    full disk never leaves a half-written .blend or Blender's `@` file under the user's name."""
    temp = os.path.join(os.path.dirname(out), temp_name(".blend"))
    try:
        bpy.ops.wm.save_as_mainfile(filepath=temp, copy=True, relative_remap=False)
        if not os.path.isfile(temp) or os.path.getsize(temp) == 0:
            raise OutputError(f"Blender could not save {out} (nothing was written); check the disk space and "
                              "permissions of that folder.")
        publish(temp, out, replace)
    except RuntimeError as exc:  # bpy reports a failed save this way
        raise OutputError(f"Blender could not save {out}: {str(exc).strip().splitlines()[-1]}. Check the disk "
                          "space and permissions of that folder.") from None
    finally:
        for leftover in (temp, temp + "@", temp + "1"):
            with contextlib.suppress(OSError):
                os.unlink(leftover)


def _number_or_none(value) -> float | None:
    """A shot's optional number (its type is checked by shot_problem, its range by Conditioning)."""
    return None if value is None else float(value)


def main(argv: list[str]) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse already printed why
        return int(exc.code or 0)
    terminate_cleanly()
    try:
        shots = shots_from_args(args)
    except TalkingHeadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    failures = 0
    for number, shot in enumerate(shots, 1):
        label = f"[{number}/{len(shots)}] {os.path.basename(str(shot.get('blend')))}:{shot.get('object')}"
        started = time.perf_counter()
        try:
            summary = bake_shot(shot)
            print(f"{label} ok in {time.perf_counter() - started:.1f} s: {summary}", file=sys.stderr, flush=True)
        except TalkingHeadError as exc:
            failures += 1
            print(f"{label} FAILED: {exc}", file=sys.stderr, flush=True)
        except Exception as exc:  # one broken shot must not stop the farm's list
            failures += 1
            print(f"{label} FAILED unexpectedly: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        except KeyboardInterrupt:
            print(f"{label} interrupted; its output was not written. {number - 1 - failures} of {len(shots)} shots "
                  "baked before it.", file=sys.stderr, flush=True)
            return 130
    print(f"talking_head bake: {len(shots) - failures} of {len(shots)} shots baked, {failures} failed",
          file=sys.stderr, flush=True)
    return 0 if failures == 0 else 1
