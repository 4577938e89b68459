"""Adapting from a video against adapting from the true motion, on the synthetic corpus's test speakers.

    .venv/bin/python benchmarks/bench_video_adapt.py --data CORPUS [--model default] [--speakers 3] [--split test]

For each test (or validation) speaker, the 5 s reference of bench_adapt.py (neutral sentences joined) is rendered
front-on with FLAME's texture (core.preview, 384 px, the face filling the frame, 30 fps) into a
video with its sound. The motion is recovered from
that video exactly as `adapt --video` does, and compared with the truth: correlation of the lip
gap, and the vertex error. Then the model is adapted once from the true motion and once from the
video, and LVE and MVE on other sentences of the speaker are compared with the unadapted model's.
Target: adapting from video removes at least 70% of the error that adapting from the true motion
removes.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_adapt import reference_of  # noqa: E402
from core.adapt import AdaptOptions, adapt_style, video_reference  # noqa: E402
from core.audio import load_audio  # noqa: E402
from core.corpus.articulation import FaceRig  # noqa: E402
from core.data import load_clips  # noqa: E402
from core.evaluate import load_masks, lve  # noqa: E402
from core.flame import SHARED_FLAME  # noqa: E402
from core.models import Conditioning, load_model  # noqa: E402
from core.preview import render_clip, texture_colours  # noqa: E402
from core.train import flame_triangles  # noqa: E402
from core.video import write_video  # noqa: E402


FACE_HALF_WIDTH_M = 0.1  # framing: forehead to chin fills the picture, as in a phone video of a face
SIZE = 384


def render_video(path: str, template: np.ndarray, triangles: np.ndarray, offsets: np.ndarray, audio: np.ndarray) -> float:
    """The reference as the actor's video: the head front-on, the face filling the frame; returns seconds taken."""
    started = time.time()
    centre = FaceRig(template, triangles).mouth_centre + np.array([0.0, 0.035, 0.0])  # between mouth and eyes
    colours = texture_colours(os.path.join(SHARED_FLAME, "texture_mesh.obj"), os.path.join(SHARED_FLAME, "texture_mesh.png"))
    frames = render_clip(template[None] + offsets, triangles, SIZE, (centre, FACE_HALF_WIDTH_M), colours=colours)
    write_video(path, frames, 30.0, audio)
    return time.time() - started


def errors(model, conditioning, clips, lips) -> tuple[float, float]:
    """Mean LVE and MVE of the model on `clips`."""
    lves, mves = [], []
    for clip in clips:
        truth = clip.vertices()
        pred = model.predict(load_audio(clip.wav_path), clip.template, conditioning).vertex_offsets()
        n = min(len(pred), len(truth))
        pred = pred[:n] + clip.template[None]
        lves.append(lve(pred, truth[:n], lips).mean())
        mves.append(np.linalg.norm(pred - truth[:n], axis=2).mean())
    return float(np.mean(lves)), float(np.mean(mves))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="a synthetic corpus (python -m core corpus)")
    parser.add_argument("--model", default="default", help="the model to adapt")
    parser.add_argument("--speakers", type=int, default=3, help="speakers of the split to use")
    parser.add_argument("--split", default="test", choices=("test", "val"),
                        help="test speakers (report) or validation speakers (choosing methods and settings)")
    parser.add_argument("--video-stage2", default="lora", choices=("lora", "none"),
                        help="adaptation after the style embedding for the video reference (default lora, as shipped)")
    parser.add_argument("--masks", default=os.path.join(SHARED_FLAME, "FLAME_masks.pkl"), help="FLAME_masks.pkl")
    args = parser.parse_args()
    model = load_model(args.model)
    lips = load_masks(args.masks)["lips"]
    triangles = flame_triangles()
    clips = [c for c in load_clips(args.data, args.split) if c.emotion == "neutral"]
    rows = []
    for speaker in sorted({c.subject for c in clips})[: args.speakers]:
        own = [c for c in clips if c.subject == speaker]
        truth_reference, used = reference_of(own)
        evaluation = [c for c in own if c not in used][:10]
        template = used[0].template
        with tempfile.TemporaryDirectory() as tmp:
            video = os.path.join(tmp, f"{speaker}.mkv")
            seconds_render = render_video(video, template, triangles, truth_reference.offsets, truth_reference.audio)
            started = time.time()
            video_ref = video_reference(video, None, template, triangles, model.fps)
            seconds_track = time.time() - started
        n = min(len(video_ref.offsets), len(truth_reference.offsets))
        rig = FaceRig(template, triangles)
        gap_true = rig.lip_gap(template[None] + truth_reference.offsets[:n])
        gap_video = rig.lip_gap(template[None] + video_ref.offsets[:n])
        correlation = float(np.corrcoef(gap_true, gap_video)[0, 1])
        motion_error = float(np.linalg.norm(video_ref.offsets[:n] - truth_reference.offsets[:n], axis=2)[:, lips].mean())
        base = errors(model, Conditioning(), evaluation, lips)
        from_truth = errors(model, Conditioning(adapted_style=adapt_style(model, truth_reference, "truth", AdaptOptions())),
                            evaluation, lips)
        from_video = errors(model, Conditioning(adapted_style=adapt_style(model, video_ref, "video",
                                                                          AdaptOptions(stage2=args.video_stage2))),
                            evaluation, lips)
        rows.append((speaker, correlation, motion_error, base, from_truth, from_video, seconds_render, seconds_track))
        print(f"{speaker}: lip-gap correlation {correlation:.3f}, lip error of the recovered motion "
              f"{motion_error * 1000:.2f} mm; MVE {base[1] * 1000:.3f} -> {from_truth[1] * 1000:.3f} (truth) / "
              f"{from_video[1] * 1000:.3f} mm (video)", file=sys.stderr, flush=True)
    print("| speaker | lip-gap correlation | recovered lip error (mm) | LVE unadapted / from truth / from video (x1e-5) "
          "| MVE unadapted / from truth / from video (mm) | video's share of the LVE cut | of the MVE cut | "
          "render / track+fit (s) |")
    print("|---|---|---|---|---|---|---|---|")
    def share(base: float, truth: float, video: float) -> str:
        """The video's part of the cut the true motion gives; undefined where the truth cuts nothing."""
        return f"{(base - video) / (base - truth):.0%}" if base - truth > 1e-12 else "n/a (no cut from truth)"

    for speaker, corr, err, base, truth, video, t_render, t_track in rows:
        print(f"| {speaker} | {corr:.3f} | {err * 1000:.2f} | {base[0] * 1e5:.3f} / {truth[0] * 1e5:.3f} / "
              f"{video[0] * 1e5:.3f} | {base[1] * 1000:.3f} / {truth[1] * 1000:.3f} / {video[1] * 1000:.3f} | "
              f"{share(base[0], truth[0], video[0])} | {share(base[1], truth[1], video[1])} | {t_render:.0f} / {t_track:.0f} |")
    mean = [np.mean([r[k][i] for r in rows]) for k in (3, 4, 5) for i in (0, 1)]
    print(f"\nmean: lip-gap correlation {np.mean([r[1] for r in rows]):.3f}; LVE {mean[0] * 1e5:.3f} unadapted, "
          f"{mean[2] * 1e5:.3f} from truth, {mean[4] * 1e5:.3f} from video: adapting from video gives "
          f"{share(mean[0], mean[2], mean[4])} of the lip-error cut and {share(mean[1], mean[3], mean[5])} of the "
          f"whole-face cut that adapting from the true motion gives (target at least 70%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
