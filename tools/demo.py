"""The main job end to end on the shipped default: speech + FLAME head in, animated .blend + preview out.

    .venv/bin/python tools/demo.py [--head HEAD.ply|.obj] [--audio SPEECH.wav] [--out out/]

Builds a scene (the head, the speech as a sound strip), animates it through the same code as the
Generate button, saves out/demo.blend (open it in Blender and press play) and out/demo_preview.png.
"""

from __future__ import annotations

import argparse
import os
import sys

from checkout_package import REPO, import_checkout

SHARED = REPO.parent / "shared"
DEFAULT_HEAD = SHARED / "flame" / "FLAME_sample.ply"
DEFAULT_AUDIO = SHARED / "audio" / "librivox" / "sense_and_sensibility_01_austen_64kb-0870.wav"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--head", default=str(DEFAULT_HEAD), help="FLAME-topology head (.ply, .obj or .npy)")
    parser.add_argument("--audio", default=str(DEFAULT_AUDIO), help="speech file")
    parser.add_argument("--out", default=str(REPO / "out"), help="output folder")
    parser.add_argument("--fps", type=float, default=24.0)
    parser.add_argument("--model", default=None)
    args = parser.parse_args(argv)

    for label, path in (("head", args.head), ("audio", args.audio)):
        if not os.path.isfile(path):
            print(f"error: {label} file not found: {path}. Pass --{label} PATH "
                  "(the defaults come from the shared/ folder beside the checkout).", file=sys.stderr)
            return 2
    os.makedirs(args.out, exist_ok=True)

    import bpy
    import numpy as np

    import_checkout()
    from talking_head.blender.audio_source import from_strip
    from talking_head.blender.job import apply, collect_request, compute
    from talking_head.core.errors import TalkingHeadError
    from talking_head.core.flame import load_flame_mesh
    from talking_head.core.models import Conditioning
    from talking_head.core.preview import frame_bounds, grid, render, write_png

    try:
        template, triangles = load_flame_mesh(args.head)
        bpy.ops.wm.read_homefile(use_empty=True)
        scene = bpy.context.scene
        scene.render.fps, scene.render.fps_base = int(round(args.fps)), round(args.fps) / args.fps
        mesh = bpy.data.meshes.new("Head")
        mesh.from_pydata(template.tolist(), [], triangles.tolist())
        head = bpy.data.objects.new("Head", mesh)
        scene.collection.objects.link(head)
        head.rotation_euler[0] = np.pi / 2  # FLAME is Y-up; stand the head up in Blender's Z-up world
        scene.sequence_editor_create()
        strip = scene.sequence_editor.strips.new_sound("speech", os.path.abspath(args.audio), 1, 1)
        strip.sound.pack()  # the .blend keeps its speech wherever it is moved
        scene.frame_start = 1
        blend = os.path.abspath(os.path.join(args.out, "demo.blend"))

        request = collect_request(scene, head, from_strip(scene, "speech"), Conditioning(), model=args.model,
                                  blend_path=blend)
        takes = compute(request, progress=lambda f, m: print(f"  {f:4.0%} {m}", file=sys.stderr))
        print(apply(request, takes), file=sys.stderr)
        motion = takes[0]
        scene.frame_end = int(request.start_frame + motion.n_frames - 1)  # play exactly the animation
        bpy.ops.wm.save_as_mainfile(filepath=blend)
    except TalkingHeadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    # preview: the mouth region at eight moments, front view, in time order: the pause before the
    # speech (at rest), three /p b m/ (sealed: no dark slit), three open vowels (the widest frame of
    # each) and the pause after it (at rest again)
    vertices = motion.vertices(template)
    speech = motion.info.get("speech")
    fps = request.fps
    frame_of = lambda seconds: int(np.clip(round(seconds * fps), 0, len(vertices) - 1))  # noqa: E731
    phones = speech.phones if speech is not None else []
    bilabials = [frame_of((a + b) / 2) for p, a, b in phones if p in ("P", "B", "M")]
    opening = np.linalg.norm(vertices[:, 3512] - vertices[:, 3533], axis=1)  # lower against upper lip, midline
    vowels = []
    for p, a, b in phones:
        if p in ("AA", "AE", "AH", "AO", "AW", "AY") and b - a >= 0.08:
            frames = np.arange(frame_of(a), frame_of(b) + 1)
            vowels.append(int(frames[np.argmax(opening[frames])]))
    pick = lambda frames: [frames[i] for i in np.linspace(0, len(frames) - 1, min(3, len(frames))).astype(int)] \
        if frames else []  # noqa: E731
    picks = sorted(set([0] + pick(bilabials) + pick(sorted(vowels, key=lambda f: -opening[f])[:6]) + [len(vertices) - 1]))
    from talking_head.core.head_frame import MOUTH_LOOP_SIZE, boundary_loops

    _, half = frame_bounds(template)
    mouth = next(loop for loop in boundary_loops(triangles) if len(loop) == MOUTH_LOOP_SIZE)
    mouth_centre = template[mouth].mean(axis=0) + np.array([0.0, -0.008, 0.0])  # lips and chin in view
    images = [render(vertices[i], triangles, "front", 192, bounds=(mouth_centre, half), crop=0.3) for i in picks]
    preview = os.path.join(args.out, "demo_preview.png")
    write_png(preview, grid(images, columns=4))
    print(f"wrote {blend} and {preview} ({len(vertices)} frames at {args.fps:g} fps)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
