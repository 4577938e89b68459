"""Each shipped model on the CPU and on the GPU (CUDA or Apple MPS) when there is one: prints figures,
asserts nothing.

    .venv/bin/python benchmarks/bench_devices.py [--models default,diffusion,emotion] [--seconds 60] [--repeats 3]

For each model and device: the time for 60 s of real speech (encode + decode, parallel mode, after a
warm-up), and how far the accelerator's motion lies from the CPU's for the same audio, style and
seed (largest and mean per-coordinate difference, mm), so that "the GPU gives the CPU's animation up
to float tolerance" is a measured figure. The speech is the clips of ../shared/audio concatenated.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

# the same speech as the CPU speed figure; importing it also puts the repository on the path
from bench_inference import SHARED, real_speech


def synchronize(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()
    elif device == "mps":
        torch.mps.synchronize()


def timed_prediction(name: str, device: str, audio: np.ndarray, template: np.ndarray,
                     repeats: int) -> tuple[float, np.ndarray]:
    """Median seconds for `audio` on `device` after a 5 s warm-up, and the offsets it gave."""
    from core.models import Conditioning, load_model

    model = load_model(name, device=device)
    model.config["mode"] = "parallel"
    model.predict(audio[: 16000 * 5], template, Conditioning(seed=1)).vertex_offsets()
    times = []
    for _ in range(repeats):
        synchronize(device)
        started = time.perf_counter()
        offsets = model.predict(audio, template, Conditioning(seed=1)).vertex_offsets()
        synchronize(device)
        times.append(time.perf_counter() - started)
    return float(np.median(times)), offsets


def main() -> int:
    import platform

    import torch

    from core.device import accelerators
    from core.flame import load_flame_mesh

    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default="default,diffusion,emotion")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_grad_enabled(False)

    template, _ = load_flame_mesh(str(SHARED / "flame" / "FLAME_sample.ply"))
    audio = real_speech(args.seconds)
    devices = ["cpu"] + accelerators()
    gpu = torch.cuda.get_device_name(0) if "cuda" in devices else ("Apple MPS" if "mps" in devices else "none")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__} "
          f"({torch.get_num_threads()} threads), GPU: {gpu}")
    print(f"audio: {args.seconds:g} s of real speech; seed 1 for models that sample\n")
    print("| model | device | seconds for the audio | largest difference from the CPU (mm) | mean difference (mm) "
          "| frames differing by over 0.01 mm |")
    print("|---|---|---|---|---|---|")
    for name in args.models.split(","):
        on_cpu = None
        for device in devices:
            seconds, offsets = timed_prediction(name, device, audio, template, args.repeats)
            if on_cpu is None:
                on_cpu, largest, mean, frames = offsets, "-", "-", "-"
            else:
                difference = np.abs(offsets - on_cpu) * 1000
                largest, mean = f"{difference.max():.2e}", f"{difference.mean():.2e}"
                frames = f"{int((difference.max(axis=(1, 2)) > 0.01).sum())} of {len(offsets)}"
            print(f"| {name} | {device} | {seconds:.2f} | {largest} | {mean} | {frames} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
