"""What running Mesh Attention on a coarser level of the FLAME mesh saves: the emotion model's
network (the shipped model's sizes, random weights) built with Mesh Attention on each level.

    .venv/bin/python benchmarks/bench_mesh_attention.py [--levels 0 1 2 3] [--batch 2]

Prints per level: vertices Mesh Attention runs on, its parameters, inference time for a
120-frame window (the model's window, 4 s) and Mesh Attention's share of it, one training step
(batch x 90 frames, forward and backward) and the training process's peak memory. Each level runs
in a process of its own so that the peak memory is its own.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from core.models import EMOTIONS, build_model, read_model_config, resolve_model_dir  # noqa: E402

CROP_FRAMES = 90
WINDOW_FRAMES = 120


def measure(level: int, batch: int) -> dict:
    shipped = read_model_config(resolve_model_dir("emotion"))
    config = {k: v for k, v in shipped.items() if k not in ("graph", "name")}
    torch.manual_seed(0)
    model = build_model({**config, "attention_level": level, "name": f"level{level}"})
    for basis in (model.content_basis, model.emotion_basis):  # a new model's bases are zero: no expression to fuse
        torch.nn.init.normal_(basis.weight, std=1e-3)
    attention = model.mesh_attention
    spent = {"attention": 0.0}

    def before(module, inputs):
        spent["start"] = time.perf_counter()

    def after(module, inputs, output):
        spent["attention"] += time.perf_counter() - spent["start"]

    attention.register_forward_pre_hook(before)
    attention.register_forward_hook(after)
    features = torch.randn(1, WINDOW_FRAMES, model.encoder.feature_dim)
    emotion = torch.zeros(1, WINDOW_FRAMES, len(EMOTIONS))
    emotion[..., EMOTIONS.index("happy")] = 0.8  # an emotion, so the expression fusion runs Mesh Attention too
    model.eval()
    times = []
    with torch.no_grad():
        for _ in range(3):
            spent["attention"] = 0.0
            started = time.perf_counter()
            model(features, emotion)
            times.append((time.perf_counter() - started, spent["attention"]))
    window, in_attention = min(times)
    model.train()
    lips = torch.zeros(batch, model.n_vertices, dtype=torch.bool)
    lips[:, :400] = True
    step = {"features": torch.randn(batch, CROP_FRAMES, model.encoder.feature_dim),
            "target_mm": torch.randn(batch, CROP_FRAMES, model.n_vertices, 3), "emotion": emotion[:, 0].expand(batch, -1),
            "progress": 0.5, "lips": lips, "contact": torch.zeros(batch, CROP_FRAMES)}
    steps = []
    for _ in range(2):
        started = time.perf_counter()
        model.zero_grad()
        model.training_loss(step)[0].backward()
        steps.append(time.perf_counter() - started)
    return {"level": level, "vertices": int(attention.spirals.shape[0]),
            "parameters": sum(p.numel() for p in attention.parameters()),
            "window_s": window, "attention_share": in_attention / window, "train_step_s": min(steps),
            "peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--levels", type=int, nargs="+", default=[0, 1, 2, 3])
    parser.add_argument("--batch", type=int, default=2, help="training clips per step (training uses 8)")
    parser.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)  # a single level, in this process
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(measure(args.one, args.batch)))
        return 0
    print(f"torch threads {torch.get_num_threads()}; training step: batch {args.batch} x {CROP_FRAMES} frames")
    print("| level | Mesh Attention vertices | its parameters | 120-frame window (s) | Mesh Attention share "
          "| training step (s) | peak memory (GB) |\n|---|---|---|---|---|---|---|")
    for level in args.levels:
        done = subprocess.run([sys.executable, os.path.abspath(__file__), "--one", str(level), "--batch", str(args.batch)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            print(f"| {level} | failed: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode} |")
            continue
        r = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"| {r['level']} | {r['vertices']} | {r['parameters']} | {r['window_s']:.3f} | {r['attention_share']:.0%} "
              f"| {r['train_step_s']:.2f} | {r['peak_gb']:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
