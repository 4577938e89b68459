"""The diffusion model's takes against the default model on the synthetic corpus's test speakers.

    .venv/bin/python benchmarks/bench_diffusion.py --data CORPUS --model diffusion [--takes 3] [--clips 40]
        [--split val] [--guidance G]

Prints, for each take (seeds 0..takes-1) and for the default model: LVE, MVE and the bilabial
closure rate on the test clips, and whether the take's LVE and closure are within 20% of the
default's (issue 7); diversity as the mean pairwise distance between takes of the same audio (all
vertices and lip vertices, mm; METHODS.md); sampling time for 60 s of speech at the model's step
count on the CPU, and on the GPU (CUDA or MPS) when there is one.
"""

from __future__ import annotations

import argparse
import glob
import itertools
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench_devices import synchronize  # noqa: E402
from core.audio import load_audio  # noqa: E402
from core.corpus.articulation import FaceRig  # noqa: E402
from core.data import load_clips  # noqa: E402
from core.device import accelerators  # noqa: E402
from core.evaluate import closure_rate, lip_events, load_masks, lve  # noqa: E402
from core.flame import SHARED_FLAME, load_flame_mesh  # noqa: E402
from core.models import Conditioning, load_model  # noqa: E402


def pairwise_distance_mm(takes: list[np.ndarray], vertices: np.ndarray | None = None) -> float:
    """Mean over take pairs of the mean per-vertex, per-frame distance between them (mm)."""
    pick = slice(None) if vertices is None else vertices
    distances = [np.linalg.norm(a[:, pick] - b[:, pick], axis=-1).mean() for a, b in itertools.combinations(takes, 2)]
    return float(np.mean(distances) * 1000)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True)
    parser.add_argument("--model", default="diffusion")
    parser.add_argument("--baseline", default="default")
    parser.add_argument("--takes", type=int, default=3)
    parser.add_argument("--clips", type=int, default=0, help="clips to use (0: all)")
    parser.add_argument("--split", default="test", help="corpus split: test to report, val to tune guidance on")
    parser.add_argument("--guidance", type=float, default=None, help="classifier-free guidance (default: the model's)")
    parser.add_argument("--masks", default=os.path.join(SHARED_FLAME, "FLAME_masks.pkl"))
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    model, baseline = load_model(args.model), load_model(args.baseline)
    if args.guidance is not None:
        model.config["guidance"] = args.guidance
    lips = load_masks(args.masks)["lips"]
    _, triangles = load_flame_mesh(os.path.join(SHARED_FLAME, "FLAME_sample.ply"))

    clips = [c for c in load_clips(args.data, args.split) if c.emotion == "neutral"]
    clips = clips[: args.clips] if args.clips else clips
    names = [f"take {k + 1} (seed {k})" for k in range(args.takes)] + ["default model"]
    lve_frames = {n: [] for n in names}
    mve = {n: [] for n in names}
    gaps = {n: [] for n in names}
    diversity_all, diversity_lips = [], []
    rigs: dict[str, FaceRig] = {}
    for clip in clips:
        truth = clip.vertices()
        audio = load_audio(clip.wav_path)
        rig = rigs.setdefault(clip.subject, FaceRig(clip.template, triangles))
        predictions = [model.predict(audio, clip.template, Conditioning(seed=k)).vertex_offsets()
                       for k in range(args.takes)]
        predictions.append(baseline.predict(audio, clip.template, Conditioning()).vertex_offsets())
        n = min(len(truth), *(len(p) for p in predictions))
        for name, offsets in zip(names, predictions):
            pred = clip.template + offsets[:n]
            lve_frames[name].append(lve(pred, truth[:n], lips))
            mve[name].append(np.linalg.norm(pred - truth[:n], axis=2).mean())
            gaps[name] += lip_events(rig.lip_gap(pred) * 1000, clip.phones)[0]
        takes = [p[:n] for p in predictions[:-1]]
        diversity_all.append(pairwise_distance_mm(takes))
        diversity_lips.append(pairwise_distance_mm(takes, lips))

    print(f"{args.split} clips: {len(clips)} (neutral, {len(rigs)} speakers); takes: {args.takes}; "
          f"sampling steps {model.config.get('sampling_steps')}, guidance {model.config.get('guidance')}")
    print("| | LVE (x1e-5) | MVE (mm) | closure rate | LVE within 20% | closure within 20% |\n|---|---|---|---|---|---|")
    base_lve = float(np.mean(np.concatenate(lve_frames["default model"]))) * 1e5
    base_closure = closure_rate(gaps["default model"]) or 0.0
    for name in names:
        value = float(np.mean(np.concatenate(lve_frames[name]))) * 1e5
        closure = closure_rate(gaps[name]) or 0.0
        within = "" if name == "default model" else \
            f" {value <= 1.2 * base_lve} | {closure >= 0.8 * base_closure} |"
        print(f"| {name} | {value:.3f} | {np.mean(mve[name]) * 1000:.3f} | {closure:.1%} |"
              + (within or " | |"))
    print(f"\ndiversity (mean pairwise distance between takes): all vertices {np.mean(diversity_all):.3f} mm, "
          f"lip vertices {np.mean(diversity_lips):.3f} mm")

    speech = [load_audio(p) for p in sorted(glob.glob(os.path.join(SHARED_FLAME, "..", "audio", "librivox", "*.wav")))]
    audio = np.concatenate(speech * 20)[: 16000 * 60]
    template = clips[0].template
    for device in ["cpu"] + accelerators():
        net = load_model(args.model, device=device)
        net.config["guidance"] = model.config["guidance"]
        net.predict(audio[: 16000 * 5], template, Conditioning(seed=0))  # warm up
        synchronize(device)
        started = time.perf_counter()
        prediction = net.predict(audio, template, Conditioning(seed=1))
        synchronize(device)
        print(f"{device}: 60 s of speech sampled in {time.perf_counter() - started:.2f} s "
              f"({net.config.get('sampling_steps')} steps, {torch.get_num_threads()} threads)")
        if device == "cpu":
            report_seams(prediction.vertex_offsets(), net.config)
    return 0


def report_seams(offsets: np.ndarray, config: dict) -> None:
    """Largest vertex move per frame at the window joins against all other frames (mm)."""
    step = np.linalg.norm(np.diff(offsets, axis=0), axis=2).max(axis=1) * 1000
    window, overlap = int(config["window_frames"]) // 2, int(config["overlap_frames"]) // 2  # in latents
    n_latent = (len(offsets) + 1) // 2
    # a window fades in from its first latent; the window before it ends where the fade-in ends
    joins = sorted({2 * latent + d for start in range(window - overlap, n_latent, window - overlap)
                    for latent in (start, start + overlap) for d in (-1, 0, 1)} & set(range(len(step))))
    ordinary = np.delete(step, joins)
    print(f"largest vertex move per frame over 60 s: median {np.median(ordinary):.3f} mm, 99th percentile "
          f"{np.percentile(ordinary, 99):.3f} mm; at the {len(joins) // 6} window joins median "
          f"{np.median(step[joins]):.3f} mm, max {step[joins].max():.3f} mm")


if __name__ == "__main__":
    sys.exit(main())
