"""The synthetic corpus's physical claims, measured on every clip of a generated corpus.

    .venv/bin/python benchmarks/bench_corpus.py --data CORPUS [--every N]

Prints, over all clips: bilabial inner-lip gaps (claim: under 0.5 mm), held open-vowel gaps
(8-15 mm), rounded-vowel narrowing (at least 15%), lip crossing, the largest lip acceleration and
how far closures fall from their consonant (within a frame).
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from core.corpus.checks import measure_corpus  # noqa: E402
from core.flame import SHARED_FLAME  # noqa: E402
from core.mesh_io import read_mesh  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True)
    parser.add_argument("--every", type=int, default=1, help="measure every N-th clip")
    args = parser.parse_args()
    stats = measure_corpus(args.data, read_mesh(os.path.join(SHARED_FLAME, "FLAME_sample.ply"))[1], args.every)
    bilabial, open_gap, rounding = stats["bilabial_gap_mm"], stats["open_gap_mm"], stats["rounding"]
    print(f"clips measured: {len(stats['crossing_mm'])}")
    print(f"bilabials: {len(bilabial)}, gap max {bilabial.max():.2f} mm, under 0.5 mm {np.mean(bilabial < 0.5):.2%}")
    print(f"held open vowels: {len(open_gap)}, gap median {np.median(open_gap):.2f} mm, min {open_gap.min():.2f}, "
          f"max {open_gap.max():.2f}, within 8-15 mm {np.mean((open_gap >= 8) & (open_gap <= 15)):.2%}")
    print(f"held rounded vowels: {len(rounding)}, narrowing min {rounding.min():.1%}, median {np.median(rounding):.1%}, "
          f"at least 15% {np.mean(rounding >= 0.15):.2%}")
    print(f"lip crossing: smallest gap minus rest gap {stats['crossing_mm'].min():.3f} mm")
    accel = stats["acceleration_mm"]
    print(f"lip acceleration per clip, max {accel.max():.2f} mm/frame^2 (99th percentile {np.percentile(accel, 99):.2f})")
    print(f"closure from its consonant: max {np.abs(stats['alignment_s']).max() * 1000:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
